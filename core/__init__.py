"""The bottom layer every package may import: the error family and the one config tree."""
