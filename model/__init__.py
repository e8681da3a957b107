"""Model code: tokenizer, GPT, training loop, sampling, checkpoints.

Plain PyTorch and `tokenizers` only, with no orchestration or project layout
knowledge, so any of these modules can be copied into a notebook and used alone.
"""

from model.checkpoint import load_checkpoint, save_checkpoint
from model.generate import generate
from model.gpt import GPT, GPTConfig, config_from_dict, config_to_dict
from model.optim import lr_at
from model.tokenizer import SPECIAL_TOKENS, BpeTokenizer, train_bpe
from model.train import (
    BatchSampler,
    StepLog,
    TrainConfig,
    evaluate_loss,
    make_optimizer,
    pack_documents,
    train,
)

__all__ = [
    "SPECIAL_TOKENS",
    "BatchSampler",
    "BpeTokenizer",
    "GPT",
    "GPTConfig",
    "StepLog",
    "TrainConfig",
    "config_from_dict",
    "config_to_dict",
    "evaluate_loss",
    "generate",
    "load_checkpoint",
    "lr_at",
    "make_optimizer",
    "pack_documents",
    "save_checkpoint",
    "train",
    "train_bpe",
]
