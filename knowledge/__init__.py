"""Help-centre knowledge: ingestion, chunking, embeddings, a persisted FAISS index, hybrid search."""
