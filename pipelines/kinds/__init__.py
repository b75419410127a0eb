"""How each model kind trains."""
