from . import backbones, distillers, heads, losses, necks, utils  # noqa: F401
