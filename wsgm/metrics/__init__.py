"""Sample-quality metrics; each function takes N×C×H×W numpy arrays and returns plain floats."""
