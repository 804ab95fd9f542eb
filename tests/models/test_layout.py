import torch

from affectkit.models.layout import to_channels_last


def test_conv_weights_get_the_channels_last_layout_of_their_rank_and_keep_their_values():
    conv2d, conv3d, linear = torch.nn.Conv2d(2, 4, 3), torch.nn.Conv3d(2, 4, 3), torch.nn.Linear(3, 2)
    model = torch.nn.Sequential(conv2d, conv3d, linear)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    params = list(model.parameters())
    to_channels_last(model)
    assert conv2d.weight.is_contiguous(memory_format=torch.channels_last) and not conv2d.weight.is_contiguous()
    assert conv3d.weight.is_contiguous(memory_format=torch.channels_last_3d) and not conv3d.weight.is_contiguous()
    assert all(p is q for p, q in zip(params, model.parameters()))  # an optimiser's references stay valid
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
