"""``DiffusionSFTTrainer``: TRL's ``SFTTrainer`` with the masked-diffusion objective.

TRL prepares the data (prompt-completion, conversational, plain text; labels ``-100`` off the
answer) and logs; this subclass only replaces the loss. Each step the token-weighting method plans
the noise, the trainer runs the scoring pass the plan asks for (no gradient, only the rows that
need it), the method finishes the noised batch, and the trainer runs the training pass (TRL's
chunked LM head) and normalises the loss. Every forward pass happens here; no method calls the model.
"""

from __future__ import annotations

import copy

import torch
from trl import SFTTrainer

from ..diffusion.example_noise import row_seeds
from ..diffusion.losses import diffusion_loss
from ..diffusion.masking import answer_mask_from_labels, grid_times, sample_times
from ..diffusion.scoring import GoldScores, gold_log_probs
from ..methods import DiffusionBatch, NoisedBatch, NoisePlan, TokenWeightingCallback, build_method, noise_at_times
from ..models.facts import get_diffusion_facts, is_bidirectional, text_config, unwrap_model
from ..models.loading import load_diffusion_model, load_diffusion_tokenizer
from ..models.masked_lm import ensure_generation_config
from ..models.vocabulary import check_mask_token_fits, vocabulary_size
from .config import DiffusionSFTConfig
from .data_checks import check_dataset_columns, prepare_counted
from .packing import check_packing_attention, document_inputs, packed_gold_log_probs
from .run_checks import FiniteLossGuard, check_resume_checkpoint, warn_untrained_padding

# Masking-ratio bands for the per-band loss metric.
T_BANDS = (("loss_t_low", 0.0, 1 / 3), ("loss_t_mid", 1 / 3, 2 / 3), ("loss_t_high", 2 / 3, 1.0 + 1e-6))


def _load_model(name_or_path: str, args: DiffusionSFTConfig, quantization_config):
    kwargs = dict(args.model_init_kwargs or {})
    if quantization_config is not None:
        if "quantization_config" in kwargs:
            raise ValueError("quantization_config is set both as a trainer argument and in model_init_kwargs.")
        kwargs["quantization_config"] = quantization_config
    kwargs.setdefault("dtype", "float32")
    if args.distributed_state.distributed_type in ("MULTI_GPU", "DEEPSPEED"):
        kwargs["device_map"] = None
    return load_diffusion_model(name_or_path, **kwargs)


class DiffusionSFTTrainer(SFTTrainer):
    """Supervised fine-tuning of diffusion LMs (LLaDA, Dream, any bidirectional model with a mask token).

    Same arguments as TRL's ``SFTTrainer``. A model given as a string goes through
    :func:`trl_lift.load_diffusion_model`; ``peft_config`` and ``quantization_config`` work as in TRL
    (QLoRA is one argument), and a ``peft_config`` without ``target_modules`` gets the family's LoRA
    targets. The token-weighting method comes from ``args.token_weighting`` unless a
    :class:`~trl_lift.TokenWeightingCallback` is passed in ``callbacks``.
    """

    _tag_names = ["trl", "sft", "trl-lift", "diffusion"]
    loss_is_scaled_for_ga = True  # compute_loss normalises over the accumulation window itself

    def __init__(self, model, args: DiffusionSFTConfig | None = None, *pos, quantization_config=None, **kwargs):
        if pos:
            raise TypeError("Pass DiffusionSFTTrainer's arguments after `args` by keyword.")
        if args is None:
            name = model if isinstance(model, str) else getattr(text_config(model), "_name_or_path", "model")
            args = DiffusionSFTConfig(f"{str(name).rstrip('/').split('/')[-1]}-diffusion-sft")
        elif not isinstance(args, DiffusionSFTConfig):
            raise TypeError(f"args must be a DiffusionSFTConfig, got {type(args).__name__}.")
        check_dataset_columns(kwargs.get("train_dataset"), kwargs.get("eval_dataset"), args,
                              kwargs.get("formatting_func"))  # before anything loads
        if isinstance(model, str):
            if kwargs.get("processing_class") is None:
                revision = (args.model_init_kwargs or {}).get("revision")
                kwargs["processing_class"] = load_diffusion_tokenizer(model, revision=revision)
            model = _load_model(model, args, quantization_config)
            # Used here: TRL, handed the loaded model, would warn that they are ignored (the caller's config is kept).
            args = copy.copy(args)
            args.model_init_kwargs = None
        elif quantization_config is not None:
            raise ValueError("quantization_config only applies to a model given by name; load the model quantized.")
        if not is_bidirectional(model):
            raise ValueError(
                "The model's attention is causal (config.is_causal is not False): masked-diffusion training of a "
                "causal model is silently wrong. Load it with trl_lift.load_diffusion_model, or set "
                "`model.config.is_causal = False` if the architecture is meant to be bidirectional."
            )
        self.packed = bool(args.packing or args.padding_free)
        if self.packed:  # before any work: the backend must confine attention to each document
            check_packing_attention(getattr(model.config, "_attn_implementation", None))
        self.facts = get_diffusion_facts(model)  # raises without a mask token
        check_mask_token_fits(vocabulary_size(model), self.facts.mask_token_id)
        self._checked_model = model  # _prepare_dataset checks the tokenizer and the data against it
        peft_config = kwargs.get("peft_config")
        if peft_config is not None and getattr(peft_config, "target_modules", "n/a") is None:
            peft_config = copy.deepcopy(peft_config)
            peft_config.target_modules = set(self.facts.lora_target_modules)
            kwargs["peft_config"] = peft_config
        given = [cb for cb in kwargs.get("callbacks") or [] if isinstance(cb, TokenWeightingCallback)]
        for method in given:
            _check_method_matches(method, args)
        ensure_generation_config(model)  # SFTTrainer writes pad / EOS ids there; encoders (BERT) have none
        super().__init__(model, args, **kwargs)
        # SFTTrainer gave the model TRL's fused LM head with the outputs gold_log_probs reads.
        unwrap_model(self.model)._trl_lift_fused_head = True
        self.supervise_padding = (
            self.facts.supervise_padding if args.supervise_padding is None else args.supervise_padding
        )
        if self.supervise_padding and self.facts.eos_token_id is None:
            raise ValueError("supervise_padding needs an EOS id: set model.config.eos_token_id.")
        if not given:
            self.add_callback(build_method(args.token_weighting, args))
        warn_untrained_padding(self.token_weighting, self.supervise_padding)
        self._loss_guard = FiniteLossGuard(self.accelerator)
        self.add_callback(self._loss_guard)

    # ---- input checks (trl_lift.training.data_checks, run_checks) ----------------------------------------------
    def _prepare_dataset(self, dataset, processing_class, args, packing, formatting_func, dataset_name):
        """TRL's preparation, with the tokenizer and ids checked and the truncated / dropped examples counted."""
        return prepare_counted(super()._prepare_dataset, self._checked_model, self.facts.mask_token_id, dataset,
                               processing_class, args, packing, formatting_func, dataset_name)

    def train(self, resume_from_checkpoint=None, *args, **kwargs):
        check_resume_checkpoint(resume_from_checkpoint, self.args, deepspeed=self.is_deepspeed_enabled)
        return super().train(resume_from_checkpoint, *args, **kwargs)

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        self._loss_guard.observe(loss, self.state.global_step + 1)  # no sync: read at logging / saving steps
        return loss

    # ---- the token-weighting method (looked up each time: resuming replaces it) ------------------------
    @property
    def token_weighting(self) -> TokenWeightingCallback:
        return next(cb for cb in self.callback_handler.callbacks if isinstance(cb, TokenWeightingCallback))

    # ---- batches -------------------------------------------------------------------------------------------
    def _noise_key(self, mode: str) -> tuple[int, int]:
        """(seed, step) of this micro-batch's per-example noise; evaluation draws the same masks every time."""
        if mode == "eval":
            return self.args.eval_seed, 0
        seed = self.token_weighting.seed
        return (self.args.seed if seed is None else seed), self.state.global_step

    def _diffusion_batch(self, inputs: dict, mode: str = "train") -> DiffusionBatch:
        layout = None
        if self.packed and "position_ids" in inputs:  # one document per row (trl_lift.training.packing)
            layout, inputs = document_inputs(inputs, self.args.max_length)
        input_ids, attention_mask = inputs["input_ids"], inputs["attention_mask"]
        answer = answer_mask_from_labels(inputs["labels"], attention_mask, supervise_padding=self.supervise_padding)
        padding = attention_mask == 0
        # Noise keyed by each sequence's own tokens: the same whatever its batch, rank or padding.
        seed, step = self._noise_key(mode)
        noise = row_seeds(input_ids, ~padding, seed=seed, step=step)
        if self.supervise_padding:
            if (attention_mask[:, 1:] > attention_mask[:, :-1]).any():
                raise ValueError(
                    "supervise_padding treats padding as the end of the answer, but this batch is padded on the left. "
                    "Use TRL's collator (right padding) or set supervise_padding=False."
                )
            # LLaDA's recipe: trailing padding is EOS content the model attends to and learns to produce.
            input_ids = input_ids.masked_fill(padding, self.facts.eos_token_id)
            attention_mask = torch.ones_like(attention_mask)
        return DiffusionBatch(input_ids, attention_mask, answer, self.facts.mask_token_id, padding_mask=padding,
                              noise=noise, layout=layout)

    def _get_num_items_in_batch(self, batch_samples: list, device: torch.device):
        """Answer tokens over the accumulation window (and devices): the 'batch' normaliser."""
        if not batch_samples or "labels" not in batch_samples[0]:
            return None
        count = sum(
            answer_mask_from_labels(b["labels"], b.get("attention_mask", torch.ones_like(b["labels"])),
                                    supervise_padding=self.supervise_padding).sum()
            for b in batch_samples
        ).to(device)
        if self.args.average_tokens_across_devices and self.args.world_size > 1:
            count = self.accelerator.gather(count).sum()
        return count

    # ---- forward passes --------------------------------------------------------------------------------------
    @staticmethod
    def _gold(model, batch: DiffusionBatch, input_ids, targets) -> GoldScores:
        if batch.layout is not None:
            return packed_gold_log_probs(model, batch.layout, input_ids, targets)
        return gold_log_probs(model, input_ids, targets, attention_mask=batch.attention_mask)

    def _scoring_pass(self, model, batch: DiffusionBatch, plan: NoisePlan) -> GoldScores:
        """Gold-token scores of the plan's input, without gradient, on the rows that need them."""
        rows = plan.score_rows
        was_training = model.training
        model.train(plan.train_mode)
        try:
            with torch.no_grad():
                if rows is None or rows.all():
                    return self._gold(model, batch, plan.input_ids, plan.score_targets)
                if batch.layout is not None:  # packed: one pass over the rows, the others' targets dropped
                    targets = plan.score_targets.masked_fill(~rows[:, None], -100)
                    part = self._gold(model, batch, plan.input_ids, targets)
                    keep = lambda x: x.masked_fill(~rows[:, None], 0)  # noqa: E731
                    return GoldScores(keep(part.log_probs), keep(part.entropy), keep(part.is_top1))
                part = gold_log_probs(model, plan.input_ids[rows], plan.score_targets[rows],
                                      attention_mask=batch.attention_mask[rows])
                return part.rows(rows, rows.numel())  # the other rows read zeros
        finally:
            model.train(was_training)

    def _training_step_noise(self, model, batch: DiffusionBatch) -> tuple[NoisedBatch, GoldScores]:
        """The method's noised batch for this step, and the training pass's scores (with gradient)."""
        method = self.token_weighting
        plan = method.plan(batch)  # 1. the method draws the noise
        if plan.one_pass:  # 2a. one pass: the method selects from the training pass's own scores
            scores = self._gold(model, batch, plan.input_ids, plan.score_targets)
            return method.finish(plan, scores.detached()), scores
        # 2b. the scoring pass the plan asks for; 3. the method finishes; 4. the training pass.
        scores = None if plan.score_targets is None else self._scoring_pass(model, batch, plan)
        noised = method.finish(plan, scores)
        targets = batch.input_ids.masked_fill(noised.loss_weights <= 0, -100)
        return noised, self._gold(model, batch, noised.input_ids, targets)

    def _eval_noise(self, batch: DiffusionBatch) -> list[NoisedBatch]:
        size, device, args = batch.input_ids.size(0), batch.input_ids.device, self.args
        if args.eval_timesteps is None:
            times = [sample_times(size, eps=args.time_epsilon, generator=batch.noise, device=device)]
        else:
            times = [t.expand(size) for t in grid_times(args.eval_timesteps, eps=args.time_epsilon, device=device)]
        return [noise_at_times(batch, t, generator=batch.noise, weighting=args.loss_weighting) for t in times]

    # ---- the loss ----------------------------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if model.training else "eval"
        batch = self._diffusion_batch(inputs, mode)
        if mode == "train":
            steps = [self._training_step_noise(model, batch)]
            accumulation = getattr(self, "current_gradient_accumulation_steps", 1)
        else:
            steps, accumulation, num_items_in_batch = [], 1, None
            for noised in self._eval_noise(batch):
                targets = batch.input_ids.masked_fill(noised.loss_weights <= 0, -100)
                steps.append((noised, self._gold(model, batch, noised.input_ids, targets)))
        losses = [self._loss(batch, noised, scores, mode, accumulation, num_items_in_batch) for noised, scores in steps]
        loss = torch.stack(losses).mean()
        if mode == "train":
            tokens = inputs["attention_mask"].sum() if "attention_mask" in inputs else batch.attention_mask.sum()
            tokens = self.accelerator.gather_for_metrics(tokens).sum().item()
            self._total_train_tokens += tokens
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        return (loss, None) if return_outputs else loss

    def _loss(self, batch, noised: NoisedBatch, scores: GoldScores, mode, accumulation, num_items_in_batch):
        # Normalise over the accumulation window, so k micro-batches give the update of one k-times larger batch.
        normalization = self.args.loss_normalization or noised.normalization
        loss = diffusion_loss(
            scores.log_probs, noised.loss_weights, batch.answer_mask, normalization=normalization,
            num_items=num_items_in_batch, num_sequences=batch.input_ids.size(0) * accumulation,
            num_micro_batches=accumulation,
        )
        if normalization == "batch" and num_items_in_batch is not None:
            if self.args.average_tokens_across_devices and self.args.world_size > 1:
                loss = loss * self.accelerator.num_processes  # DDP averages gradients over ranks
        self._log_step_metrics(mode, batch, noised, scores)
        return loss

    def _log_step_metrics(self, mode, batch, noised, scores):
        """Masked-token accuracy, loss by band of t and by group, and the method's own figures."""
        gather = lambda x: self.accelerator.gather_for_metrics(x.detach().reshape(-1))  # noqa: E731
        in_loss = noised.loss_weights > 0
        n_loss = gather(in_loss.sum()).sum()
        n_correct = gather((scores.is_top1 & in_loss).sum()).sum()
        metrics = self._metrics[mode]
        metrics["mean_token_accuracy"].append((n_correct / n_loss).item() if n_loss > 0 else 0.0)
        per_sequence = (-scores.log_probs * noised.loss_weights).sum(1) / batch.answer_mask.sum(1).clamp(min=1)
        per_sequence, t = gather(per_sequence), gather(noised.t)
        for key, low, high in T_BANDS:
            band = (t >= low) & (t < high)
            if band.any():
                metrics[key].append(per_sequence[band].mean().item())
        for name, group in noised.groups.items():
            group = gather(group)
            if group.any():
                metrics[f"loss_{name}"].append(per_sequence[group].mean().item())
        for key, value in noised.metrics.items():
            metrics[key].append(float(value))

    # ---- evaluation: deterministic masks (keyed by eval_seed and each sequence), loss only ------------------
    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None


def _check_method_matches(method: TokenWeightingCallback, args: DiffusionSFTConfig) -> None:
    """A method passed in ``callbacks`` must agree with the config on the settings both hold."""
    for name in ("time_epsilon", "loss_weighting"):
        if getattr(method, name) != getattr(args, name):
            raise ValueError(
                f"{type(method).__name__}({name}={getattr(method, name)!r}) disagrees with "
                f"DiffusionSFTConfig({name}={getattr(args, name)!r}), which the evaluation loss uses: give both the "
                "same value."
            )
