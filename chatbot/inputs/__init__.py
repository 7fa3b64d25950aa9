"""What the customer sent, made into text: speech to text and screenshot OCR."""
