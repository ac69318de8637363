# Serve the playground on 0.0.0.0:7860 with the same make-based install as the README.
#   docker build -t hat-playground . && docker run -p 7860:7860 hat-playground
FROM python:3.11-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
ENV HAT_PLAYGROUND_CACHE=/app/.cache/hat-playground \
    PYTHONUNBUFFERED=1

# Install first (cached as a layer while the requirements do not change), then add the code.
COPY Makefile requirements.txt requirements-nodeps.txt ./
# The CPU build of torch keeps the image small; drop TORCH_PIP_ARGS for a CUDA image.
RUN make setup TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
COPY . .

EXPOSE 7860
# What `make run APP_ARGS="--host 0.0.0.0"` runs, without make's requirement checks at start.
# --hosted: the safe defaults for strangers (see "Security" in the README).
CMD [".venv/bin/python", "app.py", "--host", "0.0.0.0", "--port", "7860", "--hosted"]
