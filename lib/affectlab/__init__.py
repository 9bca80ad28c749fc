"""affectlab: the library behind the affectlab book (FER and EEG emotion papers, reproduced)."""

__version__ = "0.1.0"
