"""Would an ONNX Runtime embedder make ingest faster? MiniLM exported to ONNX (fp32, and int8 by dynamic
quantisation) against sentence-transformers on the same help-centre sentences, side by side: sentences/s and
the cosine of each vector to the sentence-transformers one.

    .venv/bin/pip install onnx   # the exporter needs it; not a project dependency
    .venv/bin/python bench/onnx_embedder_probe.py [--sentences 1000]

sentence-transformers' own `backend="onnx"` needs optimum-onnx, which pins transformers < 4.58 (this project
runs transformers 5), so the model is exported with torch.onnx and run with onnxruntime directly.
Measured on the 2-core CPU (1,000 Arduino sentences, 2 threads): fp32 ONNX 139/s (1.14x), int8 201/s (1.64x), against 123/s;
int8 vectors' cosine to the originals mean 0.959, min 0.856. Not adopted: 1.6x, with vectors that move.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ARDUINO = ROOT.parent / "shared" / "data" / "arduino-help-center" / "content"


def sentences(limit: int) -> list[str]:
    from knowledge.chunking import split_sentences
    from knowledge.ingest import iter_documents

    found: list[str] = []
    for document in iter_documents([str(ARDUINO)]):
        found += [s for s in split_sentences(document.text) if len(s.split()) >= 4]
        if len(found) >= limit:
            break
    return found[:limit]


def export(path: str, folder: Path) -> tuple[Path, Path]:
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel, AutoTokenizer

    class Encoder(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return out.last_hidden_state

    names = ["input_ids", "attention_mask", "token_type_ids"]
    sample = AutoTokenizer.from_pretrained(path)(
        ["a short one", "a somewhat longer sentence"], padding=True, return_tensors="pt"
    )
    fp32, int8 = folder / "model.onnx", folder / "model-int8.onnx"
    torch.onnx.export(
        Encoder(AutoModel.from_pretrained(path).eval()),
        tuple(sample[n] for n in names),
        str(fp32),
        input_names=names,
        output_names=["last_hidden_state"],
        dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]},
        opset_version=17,
        dynamo=False,
    )
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
    return fp32, int8


def onnx_embed(session, tokenizer, texts: list[str], batch: int = 64) -> np.ndarray:
    """Mean-pooled, L2-normalised vectors, as sentence-transformers makes them (longest texts batched together)."""
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    rows = np.zeros((len(texts), 384), dtype=np.float32)
    for start in range(0, len(texts), batch):
        picked = order[start : start + batch]
        enc = tokenizer([texts[i] for i in picked], padding=True, truncation=True, max_length=256, return_tensors="np")
        hidden = session.run(None, {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids")})[0]
        mask = enc["attention_mask"][..., None].astype(np.float32)
        vectors = (hidden * mask).sum(1) / np.clip(mask.sum(1), 1e-9, None)
        rows[picked] = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return rows


def main() -> None:
    import onnxruntime as ort
    from sentence_transformers import SentenceTransformer
    from transformers import AutoTokenizer

    from chatbot.models import minilm_path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=1000)
    args = parser.parse_args()
    texts = sentences(args.sentences)
    path = minilm_path(print)
    model = SentenceTransformer(path, device="cpu")
    began = time.perf_counter()
    reference = model.encode(texts, batch_size=64, normalize_embeddings=True)
    baseline = len(texts) / (time.perf_counter() - began)
    print(f"sentence-transformers fp32: {baseline:.1f} sentences/s")
    tokenizer = AutoTokenizer.from_pretrained(path)
    with tempfile.TemporaryDirectory() as tmp:
        for file in export(path, Path(tmp)):
            options = ort.SessionOptions()
            options.intra_op_num_threads = 2
            session = ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
            onnx_embed(session, tokenizer, texts[:64])  # warm-up
            began = time.perf_counter()
            vectors = onnx_embed(session, tokenizer, texts)
            rate = len(texts) / (time.perf_counter() - began)
            cosine = (vectors * reference).sum(1)
            print(
                f"{file.name}: {rate:.1f} sentences/s ({rate / baseline:.2f}x); cosine to the original "
                f"mean {cosine.mean():.4f}, min {cosine.min():.4f}"
            )


if __name__ == "__main__":
    main()
