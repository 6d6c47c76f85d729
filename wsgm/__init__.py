"""wsgm: wavelet score-based generative models, one pipeline stage per module."""

__version__ = "0.1.0"
