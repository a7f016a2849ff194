"""charrnn: character-level RNN, LSTM and GRU language models on the CPU."""

__version__ = "0.1.0"
