"""The demo workspace the embedded launcher seeds, so a newcomer can watch a whole cycle."""
