"""cellclf: cell-image classification utilities behind the numbered notebook series.

Importing the package pins the Keras backend before anything imports keras: Keras
otherwise falls back to whatever ~/.keras/keras.json remembers.
"""
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
