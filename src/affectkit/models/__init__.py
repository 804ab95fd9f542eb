from . import vaanet  # noqa: F401  (registers)
from . import audio_resnet  # noqa: F401  (registers audio_resnet18)
from . import audio_cnn  # noqa: F401  (registers audio_cnn)
from . import cten  # noqa: F401  (registers cten, cten_visual)
