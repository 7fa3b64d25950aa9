from knowledge.lexical import BM25, tokenize


def test_tokenize_stems_and_drops_stopwords():
    assert tokenize("How do I return my returns? Returned items") == ["return", "return", "return", "item"]
    assert "£3.95" not in tokenize("costs £3.95") and "3.95" in tokenize("costs £3.95")


def test_bm25_prefers_the_document_with_rare_query_terms():
    docs = [tokenize(t) for t in ["shipping costs and delivery", "refund after return", "delivery delivery delivery"]]
    scores = BM25(docs).scores(tokenize("refund"))
    assert scores.argmax() == 1 and scores[0] == 0


def test_inflections_share_one_stem():
    assert tokenize("shipping ships shipped") == ["ship", "ship", "ship"]
    assert tokenize("deliveries delivery charges charged") == ["deliveri", "deliveri", "charg", "charg"]
