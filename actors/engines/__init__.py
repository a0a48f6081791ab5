"""Things that load a model: generators (vLLM, OpenAI-compatible), machine translators, the
encoder, language ID, and the Ray actor that holds them for the generation stage."""
