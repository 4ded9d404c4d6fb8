"""The lm-eval model ``lift_dlm``: diffusion LMs (LLaDA, Dream, native bidirectional models) in the stock harness.

``lm_eval --model lift_dlm --model_args pretrained=GSAI-ML/LLaDA-8B-Instruct,peft=ADAPTER --tasks ...``

- ``generate_until`` decodes with :func:`trl_lift.sampling.diffusion_generate` (LLaDA's sampler,
  Nie et al. 2025; Fast-dLLM's caches and threshold decoding, Wu et al. 2025), batched over
  left-padded prompts, honouring each request's ``until`` / ``max_gen_toks`` / ``temperature``.
- ``loglikelihood`` is the Monte-Carlo masked-diffusion ELBO of :mod:`trl_lift.likelihood`.
- Every request draws its randomness from a generator seeded by ``seed`` and the request itself (task,
  document, arguments, repeat number), never by process or batch position, so ``accelerate launch -m
  lm_eval`` gives the same per-sample outputs as one process (greedy decoding and likelihoods; sampled
  decoding too unless ``batch_stochastic=True``).
- The resolved sampler settings, NFE and tokens/s land in ``results["config"]`` (:meth:`get_model_info`).

Setting precedence, for every sampler field: ``--model_args`` > the request's generation kwargs (the
task's ``generation_kwargs`` and ``--gen_kwargs``) > :class:`DiffusionGenerationConfig`'s defaults.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from collections import Counter

import lm_eval.models  # noqa: F401  (lm-eval's own table first: its get_model loads it only into an empty registry)
import torch
from lm_eval.api.model import TemplateLM
from lm_eval.api.registry import register_model
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window
from tqdm import tqdm

from .likelihood import ESTIMATORS, ELBORequest, estimate_elbo
from .loading import load_diffusion_model
from .model_facts import get_diffusion_facts
from .sampling import DiffusionGenerationConfig, diffusion_generate

logger = logging.getLogger(__name__)

_DEFAULTS = DiffusionGenerationConfig()
SAMPLER_FIELDS = tuple(f.name for f in dataclasses.fields(DiffusionGenerationConfig) if f.name != "progress")
# Generation kwargs of lm-eval tasks that a diffusion sampler has no use for: ignored with one warning.
_IGNORED_GEN_KWARGS = ("top_p", "top_k", "min_p", "num_beams", "repetition_penalty", "typical_p")


def _as_str_list(until) -> list[str]:
    if until is None:
        return []
    if isinstance(until, str):
        return [until]
    if isinstance(until, (list, tuple)):
        return [str(u) for u in until]
    raise ValueError(f"`until` must be a string or a list of strings, got {type(until).__name__}: {until!r}.")


def request_seed(seed: int, instance, occurrence: int) -> int:
    """A 63-bit seed from the run's ``seed`` and the request's identity (stable across processes).

    ``occurrence`` tells apart the repeats of one instance (lm-eval passes an instance ``repeats``
    times, e.g. AIME's avg@K), so each repeat draws differently.
    """
    key = json.dumps(
        [seed, getattr(instance, "task_name", None), getattr(instance, "doc_id", None), getattr(instance, "idx", None),
         list(instance.args) if not isinstance(instance.args[-1], dict) else [instance.args[0], sorted(instance.args[-1].items(), key=str)],
         occurrence],
        default=str,
    )
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little") >> 1


def _occurrences(requests) -> list[int]:
    """For each request, how many earlier requests in the list are the same instance."""
    seen: Counter = Counter()
    out = []
    for request in requests:
        out.append(seen[id(request)])
        seen[id(request)] += 1
    return out


@register_model("lift_dlm")
class LIFTDiffusionLM(TemplateLM):
    """lm-eval model for masked diffusion LMs, loaded natively (never with remote code).

    Args:
        pretrained: hub id or folder of a LLaDA, Dream or native bidirectional checkpoint
            (:func:`trl_lift.load_diffusion_model`).
        peft: a PEFT (LoRA) adapter folder or hub id, evaluated on top of the base model, unmerged.
        dtype: ``"auto"`` (bfloat16 on an accelerator, float32 on CPU), or a torch dtype name.
        load_in_4bit: quantise the base model with bitsandbytes (compute in ``dtype``).
        revision: checkpoint revision.
        mask_token_id: overrides the model's mask token id.
        mc_num: Monte-Carlo samples per likelihood request (:func:`trl_lift.likelihood.estimate_elbo`).
        mc_estimator: ``"time"`` (stratified masking ratios, weight ``1/t``) or ``"count"`` (LLaDA's
            lower-variance form: ``l`` of ``C`` tokens masked, weight ``C/l``).
        mc_batch_size: sequences per forward pass for likelihoods; ``None`` = ``batch_size * (mc_num + 1)``.
        batch_size: prompts per sampler call (an int; ``"auto"`` is read as 1).
        max_gen_toks: cap on a request's ``max_gen_toks`` (requests asking more are clamped, with a warning).
        max_length: longest sequence fed to the model; ``None`` = ``config.max_position_embeddings``.
        device: ``"cuda"``, ``"cpu"``, ...; ``None`` = CUDA when available. Under ``accelerate launch``
            each process takes its accelerator's device.
        seed: base of the per-request seeds.
        batch_stochastic: batch sampled decoding (temperature > 0, random remasking) with one generator per
            batch (faster; then outputs depend on the batch composition). Default: such requests run one
            by one with their own generator.
        add_bos_token: prepend the tokenizer's special tokens to prompts. ``None`` (default) = the
            tokenizer's own behaviour, except for text that already starts with the BOS token (chat templates).
        **sampler: any :class:`trl_lift.sampling.DiffusionGenerationConfig` field (``gen_length``,
            ``block_length``, ``steps``, ``temperature``, ``remasking``, ``cfg_scale``, ``threshold``,
            ``cache``, ``logits_eos_inf``, ...).
    """

    def __init__(
        self,
        pretrained: str,
        peft: str | None = None,
        dtype: str = "auto",
        load_in_4bit: bool = False,
        revision: str | None = None,
        mask_token_id: int | None = None,
        mc_num: int = 128,
        mc_estimator: str = "time",
        mc_batch_size: int | None = None,
        batch_size: int | str = 1,
        max_batch_size: int | None = None,
        max_gen_toks: int = 1024,
        max_length: int | None = None,
        device: str | None = None,
        seed: int = 1234,
        batch_stochastic: bool = False,
        add_bos_token: bool | None = None,
        trust_remote_code: bool = False,
        **sampler,
    ) -> None:
        super().__init__()
        if trust_remote_code:
            raise ValueError("lift_dlm loads diffusion LMs natively and never runs remote code; drop trust_remote_code.")
        unknown = sorted(set(sampler) - set(SAMPLER_FIELDS))
        if unknown:
            raise TypeError(f"lift_dlm got unknown model_args {unknown}; sampler settings are {list(SAMPLER_FIELDS)}.")
        if isinstance(batch_size, str):
            logger.warning("lift_dlm: batch_size=%r is read as 1 (no automatic batch size search).", batch_size)
            batch_size = int(batch_size) if batch_size.isdigit() else 1
        self.sampler_overrides = dict(sampler)
        self.pretrained, self.peft, self.revision = pretrained, peft, revision
        self.mc_num, self.batch_size = int(mc_num), int(batch_size)
        if mc_estimator not in ESTIMATORS:
            raise ValueError(f"mc_estimator must be one of {ESTIMATORS}, got {mc_estimator!r}.")
        self.mc_estimator = mc_estimator
        self.mc_batch_size = int(mc_batch_size) if mc_batch_size else self.batch_size * (self.mc_num + 1)
        self.max_gen_toks, self.seed, self.batch_stochastic = int(max_gen_toks), int(seed), bool(batch_stochastic)
        self.add_bos_token = add_bos_token

        self._setup_device(device)
        self.torch_dtype = _resolve_dtype(dtype, self._device)
        self.model = self._load_model(mask_token_id, load_in_4bit)
        self.facts = get_diffusion_facts(self.model)
        self.tokenizer = _load_tokenizer(pretrained, revision)
        self.pad_token_id = self.tokenizer.pad_token_id
        if self.pad_token_id is None or self.pad_token_id == self.facts.mask_token_id:
            self.pad_token_id = self.facts.eos_token_id
        config = self.model.config.get_text_config() if hasattr(self.model.config, "get_text_config") else self.model.config
        self._max_length = int(max_length or getattr(config, "max_position_embeddings", 4096))
        self.stats = {"nfe": 0, "generated_tokens": 0, "generation_seconds": 0.0, "generate_requests": 0,
                      "likelihood_requests": 0, "likelihood_forward_rows": 0, "likelihood_seconds": 0.0}
        self.configs_used: dict[str, dict] = {}
        self._warned: set[str] = set()
        self._resolve_generation({})  # fail fast on invalid sampler settings

    # --- setup ------------------------------------------------------------------------------

    def _setup_device(self, device) -> None:
        self.accelerator = None
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            from accelerate import Accelerator

            # Without an accelerator, processes form a gloo (MULTI_CPU) group only when asked for the CPU.
            on_cpu = (device is not None and str(device) == "cpu") or not torch.cuda.is_available()
            accelerator = Accelerator(cpu=on_cpu)
            if accelerator.num_processes > 1:
                self.accelerator = accelerator
                self._rank, self._world_size = accelerator.process_index, accelerator.num_processes
                self._device = accelerator.device
                return
        if device and str(device).startswith("cuda") and not torch.cuda.is_available():
            logger.warning("lift_dlm: device %r is not available (lm_eval's --device defaults to cuda); using cpu.", device)
            device = "cpu"
        self._device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))

    def _load_model(self, mask_token_id, load_in_4bit: bool):
        kwargs = {"dtype": self.torch_dtype, "revision": self.revision}
        if load_in_4bit:
            from transformers import BitsAndBytesConfig

            kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=self.torch_dtype)
            kwargs["device_map"] = {"": str(self._device)}
        model = load_diffusion_model(self.pretrained, mask_token_id=mask_token_id, **kwargs)
        if not load_in_4bit:
            model = model.to(self._device)
        if self.peft:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, self.peft, revision=self.revision)
        return model.eval()

    # --- lm-eval plumbing -------------------------------------------------------------------

    @property
    def eot_token_id(self) -> int:
        return self.facts.eos_token_id

    @property
    def max_length(self) -> int:
        return self._max_length

    @property
    def tokenizer_name(self) -> str:
        return self.tokenizer.name_or_path.replace("/", "__")

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs) -> list[int]:
        if add_special_tokens is None:
            add_special_tokens = self.add_bos_token
        if add_special_tokens is None:
            bos = self.tokenizer.bos_token
            add_special_tokens = not (bos and string.startswith(bos))
        return self.tokenizer(string, add_special_tokens=add_special_tokens)["input_ids"]

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        import jinja2

        kwargs = {"tokenize": False, "add_generation_prompt": add_generation_prompt,
                  "continue_final_message": not add_generation_prompt}
        try:
            return self.tokenizer.apply_chat_template(chat_history, **kwargs)
        except jinja2.exceptions.TemplateError:
            logger.warning("lift_dlm: the chat template rejected the system message; retrying without it.")
            return self.tokenizer.apply_chat_template([m for m in chat_history if m["role"] != "system"], **kwargs)

    def all_gather(self, tensor):
        return self.accelerator.gather(tensor) if self.accelerator is not None else tensor

    def gather_object(self, obj, dst=0):
        if self.accelerator is None:
            return [obj]
        result = [None] * self.world_size if self.rank == dst else None
        torch.distributed.gather_object(obj=obj, object_gather_list=result, dst=dst)
        return result

    def barrier(self) -> None:
        if self.accelerator is not None:
            self.accelerator.wait_for_everyone()

    def _warn_once(self, key: str, message: str, *args) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(message, *args)

    def _generator(self, instance, occurrence: int) -> torch.Generator:
        return torch.Generator().manual_seed(request_seed(self.seed, instance, occurrence))

    # --- likelihoods --------------------------------------------------------------------------

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, generators=None) -> list[tuple[float, bool]]:
        """``requests``: ``((context, continuation), context_ids, continuation_ids)`` as TemplateLM builds them."""
        elbo_requests = []
        for i, (_, context, continuation) in enumerate(requests):
            if len(continuation) > self.max_length - 1:
                raise ValueError(f"a continuation of {len(continuation)} tokens exceeds max_length={self.max_length}.")
            context = context[-(self.max_length - len(continuation)) :]
            elbo_requests.append(ELBORequest(context, continuation, generators[i] if generators else None))
        start = time.perf_counter()
        results = []
        chunk = max(1, self.mc_batch_size // (self.mc_num + 1))
        for first in tqdm(range(0, len(elbo_requests), chunk), disable=disable_tqdm, desc="lift_dlm likelihoods"):
            results.extend(
                estimate_elbo(
                    self.model, elbo_requests[first : first + chunk], mc_num=self.mc_num,
                    mask_token_id=self.facts.mask_token_id, pad_token_id=self.pad_token_id,
                    batch_size=self.mc_batch_size, device=self._device, estimator=self.mc_estimator,
                )
            )
        self.stats["likelihood_seconds"] += time.perf_counter() - start
        self.stats["likelihood_requests"] += len(elbo_requests)
        self.stats["likelihood_forward_rows"] += len(elbo_requests) * (self.mc_num + 1)
        return results

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        occurrences = _occurrences(requests)
        encoded = []
        for request in requests:
            context, continuation = request.args
            if context == "":
                continuation_ids = self.tok_encode(continuation, add_special_tokens=False)
                encoded.append(((context, continuation), [self.prefix_token_id], continuation_ids))
            else:
                encoded.append(((context, continuation), *self._encode_pair(context, continuation)))
        generators = [self._generator(r, o) for r, o in zip(requests, occurrences)]
        return self._loglikelihood_tokens(encoded, disable_tqdm=disable_tqdm, generators=generators)

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        """Sum of the ELBO estimates of the disjoint windows of each text (lm-eval's rolling windows)."""
        windows, owners, generators = [], [], []
        for r, (request, occurrence) in enumerate(zip(requests, _occurrences(requests))):
            tokens = self.tok_encode(request.args[0], add_special_tokens=False)
            rolling = get_rolling_token_windows(tokens, self.prefix_token_id, self.max_length, context_len=1)
            for w, (context, prediction) in enumerate(map(make_disjoint_window, rolling)):
                windows.append(((None, None), list(context), list(prediction)))
                owners.append(r)
                generator = self._generator(request, occurrence)
                generator.manual_seed(generator.initial_seed() + w)
                generators.append(generator)
        scores = self._loglikelihood_tokens(windows, disable_tqdm=disable_tqdm, generators=generators)
        totals = [0.0] * len(requests)
        for owner, (logprob, _) in zip(owners, scores):
            totals[owner] += logprob
        return totals

    # --- generation ---------------------------------------------------------------------------

    def _resolve_generation(self, gen_kwargs: dict) -> tuple[DiffusionGenerationConfig, list[str], int]:
        """``(sampler config, stop strings, tokens to keep)`` of one request's generation kwargs."""
        kwargs = dict(gen_kwargs)
        until = _as_str_list(kwargs.pop("until", None))
        requested = kwargs.pop("max_gen_toks", None)
        do_sample = kwargs.pop("do_sample", None)
        for name in _IGNORED_GEN_KWARGS:
            if kwargs.pop(name, None) is not None:
                self._warn_once(name, "lift_dlm: the generation kwarg %r has no meaning for diffusion sampling; ignored.", name)
        settings = {k: kwargs.pop(k) for k in list(kwargs) if k in SAMPLER_FIELDS}
        if kwargs:
            self._warn_once(str(sorted(kwargs)), "lift_dlm: ignoring unknown generation kwargs %s.", sorted(kwargs))
        if do_sample is False:
            settings["temperature"] = 0.0
        elif do_sample and not settings.get("temperature"):
            settings["temperature"] = 1.0
        overridden = {k for k in settings if k in self.sampler_overrides and settings[k] != self.sampler_overrides[k]}
        if overridden:
            self._warn_once(f"override{sorted(overridden)}", "lift_dlm: --model_args %s override the task's own %s "
                            "(e.g. a task's sampling temperature for repeated samples).",
                            {k: self.sampler_overrides[k] for k in sorted(overridden)},
                            {k: settings[k] for k in sorted(overridden)})
        settings.update(self.sampler_overrides)
        gen_length = int(settings.get("gen_length", requested if requested is not None else _DEFAULTS.gen_length))
        if gen_length > self.max_gen_toks:
            self._warn_once(f"clamp{gen_length}", "lift_dlm: a request asks for %d new tokens; clamped to max_gen_toks=%d "
                            "(raise it with --model_args max_gen_toks=N).", gen_length, self.max_gen_toks)
            gen_length = self.max_gen_toks
        # The canvas is rounded up to whole blocks; the steps per block stay what the settings give
        # (steps over the blocks of their gen_length; by default one token per step).
        block = int(settings.get("block_length", min(_DEFAULTS.block_length, gen_length)))
        if "steps" in settings:
            reference_blocks = -(-int(settings.get("gen_length", gen_length)) // block)
            steps_per_block = max(1, int(settings["steps"]) // reference_blocks)
        else:
            steps_per_block = block
        blocks = -(-gen_length // block)
        settings.update(gen_length=blocks * block, block_length=block, steps=blocks * min(block, steps_per_block))
        return DiffusionGenerationConfig(**settings), until, gen_length

    def _is_stochastic(self, config: DiffusionGenerationConfig) -> bool:
        return config.temperature > 0 or config.remasking == "random"

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        occurrences = _occurrences(requests)
        jobs = []  # (index, prompt ids, config, until, keep)
        for i, request in enumerate(requests):
            context, gen_kwargs = request.args
            config, until, keep = self._resolve_generation(gen_kwargs or {})
            prompt = self.tok_encode(context)[-max(1, self.max_length - config.gen_length) :]
            jobs.append((i, prompt, config, until, keep))
        groups: dict[str, list] = {}
        for job in jobs:
            groups.setdefault(json.dumps(dataclasses.asdict(job[2]), sort_keys=True), []).append(job)
        outputs: list[str | None] = [None] * len(requests)
        progress = tqdm(total=len(requests), disable=disable_tqdm, desc="lift_dlm generation")
        for key, group in groups.items():
            group.sort(key=lambda job: -len(job[1]))
            config = group[0][2]
            size = self.batch_size if (self.batch_stochastic or not self._is_stochastic(config)) else 1
            for first in range(0, len(group), size):
                batch = group[first : first + size]
                generator = self._generator(requests[batch[0][0]], occurrences[batch[0][0]])
                tokens = self._generate_batch([job[1] for job in batch], config, generator, key)
                for job, row in zip(batch, tokens):
                    outputs[job[0]] = self._decode(row[: job[4]], job[3])
                    self.cache_hook.add_partial("generate_until", requests[job[0]].args, outputs[job[0]])
                progress.update(len(batch))
        progress.close()
        return outputs

    def _generate_batch(self, prompts: list[list[int]], config: DiffusionGenerationConfig, generator, key: str) -> torch.Tensor:
        """Left-pad ``prompts``, run the sampler, return the ``[B, gen_length]`` generated tokens (CPU)."""
        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(prompts), width), self.pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            input_ids[row, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
            attention[row, width - len(prompt) :] = 1
        start = time.perf_counter()
        out = diffusion_generate(self.model, input_ids.to(self._device), attention_mask=attention.to(self._device),
                                 generation_config=config, generator=generator)
        seconds = time.perf_counter() - start
        for stats in (self.stats, self.configs_used.setdefault(key, {"requests": 0, "nfe": 0, "generated_tokens": 0,
                                                                      "generation_seconds": 0.0})):
            stats["nfe"] += out.nfe
            stats["generated_tokens"] += len(prompts) * config.gen_length
            stats["generation_seconds"] += seconds
            stats["request_nfe"] = stats.get("request_nfe", 0) + out.nfe * len(prompts)
            stats["generate_requests" if stats is self.stats else "requests"] += len(prompts)
        return out.sequences[:, width:].cpu()

    def _decode(self, tokens: torch.Tensor, until: list[str]) -> str:
        """Text up to the first EOS / end-of-turn token, then up to the first stop string."""
        stops = [i for i in (self.facts.eos_token_id, self.facts.eot_token_id) if i is not None]
        ids = tokens.tolist()
        cut = next((n for n, t in enumerate(ids) if t in stops), len(ids))
        text = self.tokenizer.decode(ids[:cut], skip_special_tokens=True)
        for stop in until:
            if stop and stop in text:
                text = text.split(stop, 1)[0]
        return text

    # --- reproducibility ----------------------------------------------------------------------

    def get_model_info(self) -> dict:
        """What lm-eval writes into ``results["config"]``: model, sampler settings, NFE and tokens/s.

        Counts are this process's (rank 0's under data parallelism; ``world_size`` says how many ran).
        """
        def rate(stats):
            return stats["generated_tokens"] / stats["generation_seconds"] if stats["generation_seconds"] else None

        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        used = []
        for key, stats in self.configs_used.items():
            used.append({"sampler": json.loads(key), **stats, "nfe_per_request": stats["request_nfe"] / max(1, stats["requests"]),
                         "tokens_per_second": rate(stats)})
        return {
            "lift_dlm": {
                "pretrained": self.pretrained,
                "peft": self.peft,
                "revision": self.revision,
                "dtype": str(self.torch_dtype),
                "family": self.facts.family,
                "mask_token_id": self.facts.mask_token_id,
                "model_num_parameters": sum(p.numel() for p in base.parameters()),
                "sampler_model_args": dict(self.sampler_overrides),
                "sampler_defaults": dataclasses.asdict(DiffusionGenerationConfig()),
                "sampler_configs_used": used,
                "max_gen_toks": self.max_gen_toks,
                "mc_num": self.mc_num,
                "mc_estimator": self.mc_estimator,
                "likelihood": "Monte-Carlo masked-diffusion ELBO, stratified time grid (trl_lift.likelihood)",
                "seed": self.seed,
                "batch_size": self.batch_size,
                "batch_stochastic": self.batch_stochastic,
                "world_size": self.world_size,
                **self.stats,
                "tokens_per_second": rate(self.stats),
                "trl_lift_version": _version(),
            }
        }


def _resolve_dtype(dtype, device) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        return torch.bfloat16 if torch.device(device).type != "cpu" else torch.float32
    value = getattr(torch, str(dtype), None)
    if not isinstance(value, torch.dtype):
        raise ValueError(f"dtype must be 'auto' or a torch dtype name (bfloat16, float16, float32), got {dtype!r}.")
    return value


def _load_tokenizer(pretrained: str, revision):
    from .loading import load_diffusion_tokenizer

    return load_diffusion_tokenizer(pretrained, revision=revision)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("trl-lift")
    except Exception:  # pragma: no cover - not installed
        return "unknown"
