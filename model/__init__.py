"""Model code: tokenizer, GPT, training loop, sampling, checkpoints.

Plain PyTorch and `tokenizers` only, with no orchestration or project layout
knowledge, so any of these modules can be copied into a notebook and used alone.
Import the modules themselves (`from model.gpt import GPT`): the package imports
nothing, so a command that needs only the presets or the tokenizer does not load torch.
"""
