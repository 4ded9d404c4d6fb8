"""The lm-eval model ``lift_dlm``: diffusion LMs (LLaDA, Dream, native bidirectional models) in the stock harness.

``lm_eval --model lift_dlm --model_args pretrained=GSAI-ML/LLaDA-8B-Instruct,peft=ADAPTER --tasks ...``

- ``generate_until`` decodes with :func:`trl_lift.diffusion_generate` (LLaDA's or Dream's sampler;
  Fast-dLLM's caches and threshold decoding), batched over left-padded prompts grouped by sampler
  settings; each request's settings come from :meth:`DiffusionGenerationConfig.from_request`, and
  ``preset=NAME`` selects a published protocol (:mod:`trl_lift.generation.presets`).
- ``loglikelihood`` is the Monte-Carlo masked-diffusion ELBO of :mod:`trl_lift.evaluation.likelihood`.
- Every request draws its randomness from a generator seeded by ``seed`` and the request itself (task,
  document, arguments, repeat number), never by process or batch position, so data-parallel runs give
  one process's per-sample outputs (sampled decoding too unless ``batch_stochastic=True``).
- The resolved sampler settings, NFE and tokens/s land in ``results["config"]`` (:meth:`get_model_info`).
"""

from __future__ import annotations

import dataclasses
import logging
import time

import torch
from lm_eval.api.model import TemplateLM
from lm_eval.models.utils import Collator, handle_stop_sequences, postprocess_generated_text
from lm_eval.models.utils_hf import get_dtype
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window
from tqdm import tqdm

from ..generation.cache import check_cache_supported
from ..generation.config import DiffusionGenerationConfig
from ..generation.presets import preset_values
from ..generation.sampler import diffusion_generate
from ..models.facts import get_diffusion_facts, text_config, unwrap_model
from ..models.loading import load_diffusion_model, load_diffusion_tokenizer
from ..models.vocabulary import check_tokenizer_fits_model
from .data_parallel import DataParallelMixin
from .likelihood import ELBORequest, estimate_elbo
from .lm_eval_args import DEFAULT_PRETRAINED, check_model_args, default_preset
from .request_seeds import request_generators
from .run_record import RunRecord

logger = logging.getLogger(__name__)


class LIFTDiffusionLM(DataParallelMixin, TemplateLM):
    """lm-eval model for masked diffusion LMs, loaded natively (never with remote code).

    Its model_args (``pretrained``, ``peft``, ``preset``, the sampler settings, ``dtype``, ``mc_num`` ...),
    their defaults and ranges are documented in :mod:`trl_lift.evaluation.lm_eval_args`, which checks
    them before anything loads, and tabled in the README ("lift_dlm model_args").
    """

    def __init__(self, pretrained: str = DEFAULT_PRETRAINED, peft: str | None = None, dtype: str = "auto",
                 load_in_4bit: bool = False, revision: str | None = None, mask_token_id: int | None = None,
                 mc_num: int = 128, mc_estimator: str = "time", mc_batch_size: int | None = None,
                 batch_size: int | str = 1,
                 max_batch_size: int | None = None, max_gen_toks: int = 1024, max_length: int | None = None,
                 device: str | None = None, seed: int = 1234, batch_stochastic: bool = False,
                 add_bos_token: bool | None = None, trust_remote_code: bool = False, preset: str | None = None,
                 **sampler) -> None:
        super().__init__()
        batch_size = check_model_args(sampler=sampler, mc_estimator=mc_estimator, batch_size=batch_size,
                                      mc_num=mc_num, mc_batch_size=mc_batch_size, max_gen_toks=max_gen_toks,
                                      max_length=max_length)
        preset = default_preset(preset, sampler)
        self.preset, self.max_gen_toks = preset, int(max_gen_toks)
        self.sampler_overrides = {**(preset_values(preset) if preset else {}), **sampler}
        DiffusionGenerationConfig.from_request({}, overrides=self.sampler_overrides)  # fail fast on bad settings
        self.pretrained, self.peft, self.revision = pretrained, peft, revision
        self.mc_num, self.mc_estimator, self.batch_size = int(mc_num), mc_estimator, int(batch_size)
        self.mc_batch_size = int(mc_batch_size) if mc_batch_size else self.batch_size * (self.mc_num + 1)
        self.seed, self.batch_stochastic, self.add_bos_token = int(seed), bool(batch_stochastic), add_bos_token

        self._setup_device(device)
        self.torch_dtype = get_dtype(dtype)
        if self.torch_dtype in (None, "auto"):
            self.torch_dtype = torch.bfloat16 if self._device.type != "cpu" else torch.float32
        self.model = load_diffusion_model(
            pretrained, adapter=peft, mask_token_id=mask_token_id, dtype=self.torch_dtype, revision=revision,
            load_in_4bit=load_in_4bit, trust_remote_code=trust_remote_code,
            **({"device_map": {"": str(self._device)}} if load_in_4bit else {}),
        )
        self.model = (self.model if load_in_4bit else self.model.to(self._device)).eval()
        self.facts = get_diffusion_facts(self.model)
        check_cache_supported(self.model, self.sampler_overrides.get("cache", "none"))  # before any request runs
        self.tokenizer = load_diffusion_tokenizer(pretrained, revision=revision)
        check_tokenizer_fits_model(self.tokenizer, self.model, self.facts.mask_token_id)
        self.pad_token_id = self.tokenizer.pad_token_id
        if self.pad_token_id is None or self.pad_token_id == self.facts.mask_token_id:
            self.pad_token_id = self.facts.eos_token_id
        self._max_length = int(max_length or getattr(text_config(self.model), "max_position_embeddings", 4096))
        self.record = RunRecord()
        self._warned: set[str] = set()

    # --- lm-eval plumbing -------------------------------------------------------------------------
    eot_token_id = property(lambda self: self.facts.eos_token_id)
    max_length = property(lambda self: self._max_length)
    tokenizer_name = property(lambda self: self.tokenizer.name_or_path.replace("/", "__"))

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

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning("lift_dlm: %s", message)

    def _warn_cut(self, what: str, cuts: list[int], room: str) -> None:
        """Warn once per kind of request that some were cut from the left to fit ``max_length``."""
        cut = [c for c in cuts if c > 0]
        if cut:
            self._warn_once(f"cut {what}", (
                f"{len(cut)} of {len(cuts)} {what} were longer than {room} and lost their first tokens ({max(cut)} "
                f"at most, {sum(cut)} in all; max_length={self.max_length}): the model never sees them. Raise "
                "--model_args max_length=N, or lower max_gen_toks / gen_length."))

    # --- likelihoods ------------------------------------------------------------------------------
    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, generators=None) -> list[tuple[float, bool]]:
        """``requests``: ``((context, continuation), context_ids, continuation_ids)`` as TemplateLM builds them."""
        elbo_requests, cuts = [], []
        for i, (_, context, continuation) in enumerate(requests):
            if len(continuation) > self.max_length - 1:
                raise ValueError(f"a continuation of {len(continuation)} tokens exceeds max_length={self.max_length}; "
                                 "raise it with --model_args max_length=N.")
            cuts.append(max(0, len(context) - (self.max_length - len(continuation))))
            context = context[-(self.max_length - len(continuation)):]
            elbo_requests.append(ELBORequest(context, continuation, generators[i] if generators else None))
        self._warn_cut("likelihood contexts", cuts, "max_length minus the continuation")
        start = time.perf_counter()
        results = estimate_elbo(self.model, elbo_requests, mc_num=self.mc_num, mask_token_id=self.facts.mask_token_id,
                                pad_token_id=self.pad_token_id, batch_size=self.mc_batch_size, device=self._device,
                                estimator=self.mc_estimator, progress=not disable_tqdm)
        self.record.likelihood(len(elbo_requests), len(elbo_requests) * (self.mc_num + 1), time.perf_counter() - start)
        return results

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        encoded = []
        for context, continuation in (request.args for request in requests):
            if context == "":
                ids = self.tok_encode(continuation, add_special_tokens=False)
                encoded.append(((context, continuation), [self.prefix_token_id], ids))
            else:
                encoded.append(((context, continuation), *self._encode_pair(context, continuation)))
        return self._loglikelihood_tokens(encoded, disable_tqdm, generators=request_generators(self.seed, requests))

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        """Sum of the ELBO estimates of the disjoint windows of each text (lm-eval's rolling windows)."""
        windows, owners, generators = [], [], []
        for r, (request, generator) in enumerate(zip(requests, request_generators(self.seed, requests))):
            tokens = self.tok_encode(request.args[0], add_special_tokens=False)
            rolling = get_rolling_token_windows(tokens, self.prefix_token_id, self.max_length, context_len=1)
            for w, (context, prediction) in enumerate(map(make_disjoint_window, rolling)):
                windows.append(((None, None), list(context), list(prediction)))
                owners.append(r)
                generators.append(torch.Generator().manual_seed(generator.initial_seed() + w))
        totals = [0.0] * len(requests)
        for owner, (logprob, _) in zip(owners, self._loglikelihood_tokens(windows, disable_tqdm, generators)):
            totals[owner] += logprob
        return totals

    # --- generation -------------------------------------------------------------------------------
    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        jobs, cuts = [], []  # (prompt ids, resolved request, generator, request); tokens cut from each prompt
        for request, generator in zip(requests, request_generators(self.seed, requests)):
            context, gen_kwargs = request.args
            resolved = DiffusionGenerationConfig.from_request(
                gen_kwargs or {}, overrides=self.sampler_overrides, max_gen_toks=self.max_gen_toks
            )
            for key, message in resolved.notes:
                self._warn_once(key, message)
            prompt = self.tok_encode(context)
            room = max(1, self.max_length - resolved.config.gen_length)
            cuts.append(max(0, len(prompt) - room))
            jobs.append((prompt[-room:], resolved, generator, request))
        self._warn_cut("prompts", cuts, "max_length minus the generated tokens")
        settings = lambda job: dataclasses.asdict(job[1].config)  # noqa: E731
        collator = Collator(jobs, sort_fn=lambda job: -len(job[0]), group_fn=settings, group_by="gen_kwargs")
        batch_of = lambda i, group: 1 if group[0][1].config.is_stochastic and not self.batch_stochastic else self.batch_size  # noqa: E731,E501
        outputs, progress = [], tqdm(total=len(requests), disable=disable_tqdm, desc="lift_dlm generation")
        for batch in collator.get_batched(n=self.batch_size, batch_fn=batch_of):
            tokens = self._generate_batch([job[0] for job in batch], batch[0][1].config, batch[0][2])
            for (_, resolved, _, request), row in zip(batch, tokens):
                until = handle_stop_sequences(resolved.until, eos=None)
                outputs.append(self._decode(row[:resolved.keep], until))
                self.cache_hook.add_partial("generate_until", request.args, outputs[-1])
            progress.update(len(batch))
        progress.close()
        return collator.get_original(outputs)

    def _generate_batch(self, prompts: list[list[int]], config: DiffusionGenerationConfig, generator) -> torch.Tensor:
        """Left-pad ``prompts``, run the sampler, return the ``[B, gen_length]`` generated tokens (CPU)."""
        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(prompts), width), self.pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            input_ids[row, width - len(prompt):] = torch.tensor(prompt, dtype=torch.long)
            attention[row, width - len(prompt):] = 1
        start = time.perf_counter()
        out = diffusion_generate(self.model, input_ids.to(self._device), attention_mask=attention.to(self._device),
                                 generation_config=config, generator=generator)
        self.record.generation(config, len(prompts), out.nfe, time.perf_counter() - start)
        return out.sequences[:, width:].cpu()

    def _decode(self, tokens: torch.Tensor, until: list[str]) -> str:
        """Text up to the first EOS / end-of-turn token, then up to the first stop string."""
        stops = [i for i in (self.facts.eos_token_id, self.facts.eot_token_id) if i is not None]
        ids = tokens.tolist()
        ids = ids[:next((n for n, t in enumerate(ids) if t in stops), len(ids))]
        return postprocess_generated_text(self.tokenizer.decode(ids, skip_special_tokens=True), until, None)

    # --- reproducibility --------------------------------------------------------------------------
    def get_model_info(self) -> dict:
        """What lm-eval writes into ``results["config"]``: model, sampler settings, NFE and tokens/s.

        Counts are this process's (rank 0's under data parallelism; ``world_size`` says how many ran).
        """
        from .. import __version__

        return {"lift_dlm": {
            "pretrained": self.pretrained, "peft": self.peft, "revision": self.revision,
            "dtype": str(self.torch_dtype), "family": self.facts.family, "mask_token_id": self.facts.mask_token_id,
            "model_num_parameters": sum(p.numel() for p in unwrap_model(self.model).parameters()),
            "preset": self.preset, "sampler_model_args": dict(self.sampler_overrides),  # the preset's, then model_args
            "sampler_defaults": dataclasses.asdict(DiffusionGenerationConfig()),
            "max_gen_toks": self.max_gen_toks, "mc_num": self.mc_num, "mc_estimator": self.mc_estimator,
            "likelihood": "Monte-Carlo masked-diffusion ELBO, stratified (trl_lift.evaluation.likelihood)",
            "seed": self.seed, "batch_size": self.batch_size, "batch_stochastic": self.batch_stochastic,
            "world_size": self.world_size, **self.record.summary(), "trl_lift_version": __version__,
        }}
