"""Using a checkpoint: a chat session, the web page and the OpenAI-compatible server."""
