"""Text: the spaCy pipeline, the sentence embedder, prompts, and the LLM clients (one interface,
one retry policy) with their reply cache."""
