"""``DiffusionSFTTrainer``: TRL's ``SFTTrainer`` with the masked-diffusion objective.

TRL prepares the data (prompt-completion, conversational, plain text; labels ``-100`` off the
answer) and logs; this subclass only replaces the loss: noise the answer (through the
token-weighting callback), score the gold tokens with TRL's chunked LM head, weight and normalise.
"""

from __future__ import annotations

import importlib
from dataclasses import replace

import torch
from trl import SFTTrainer

from .config import DiffusionSFTConfig
from .loading import load_diffusion_model, load_diffusion_tokenizer
from .losses import GoldScores, diffusion_loss, gold_log_probs
from .masking import answer_mask_from_labels, grid_times, sample_times
from .model_facts import get_diffusion_facts, is_bidirectional
from .token_weighting import DiffusionBatch, NoisedBatch, TokenWeightingCallback, noise_at_times

# token_weighting name -> "module:Class", imported when used.
TOKEN_WEIGHTING_CLASSES = {
    "vanilla": "trl_lift.token_weighting:VanillaMasking",
    "lift": "trl_lift.lift:LIFTCallback",
    "gift": "trl_lift.baselines:GIFTMasking",
    "cart": "trl_lift.baselines:CARTWeighting",
}

# Masking-ratio bands for the per-band loss metric.
T_BANDS = (("loss_t_low", 0.0, 1 / 3), ("loss_t_mid", 1 / 3, 2 / 3), ("loss_t_high", 2 / 3, 1.0 + 1e-6))


# token_weighting name -> {constructor argument: DiffusionSFTConfig field}.
TOKEN_WEIGHTING_SETTINGS = {
    "vanilla": {},
    "lift": {
        "bands": "lift_bands", "rho_rule": "lift_rho_rule", "component_scope": "lift_component_scope",
        "policy": "lift_policy", "components": "lift_components", "approximate": "lift_approximate",
        "scoring_mode": "lift_scoring_mode",
    },
    "gift": {"scoring_mode": "gift_scoring_mode"},
    "cart": {"p": "cart_p", "inverse_t": "cart_inverse_t"},
}


def build_token_weighting(name: str, args=None, **kwargs) -> TokenWeightingCallback:
    """Instantiate the token-weighting callback registered under ``name``, configured from ``args``."""
    module_name, class_name = TOKEN_WEIGHTING_CLASSES[name].split(":")
    if args is not None:
        kwargs = {key: getattr(args, field) for key, field in TOKEN_WEIGHTING_SETTINGS[name].items()} | kwargs
    return getattr(importlib.import_module(module_name), class_name)(**kwargs)


def _load_model(name_or_path: str, args: DiffusionSFTConfig, quantization_config):
    kwargs = dict(args.model_init_kwargs or {})
    if quantization_config is not None:
        if "quantization_config" in kwargs:
            raise ValueError("quantization_config is set both as a trainer argument and in model_init_kwargs.")
        kwargs["quantization_config"] = quantization_config
    dtype = kwargs.get("dtype", "float32")
    if isinstance(dtype, str) and dtype != "auto":
        kwargs["dtype"] = getattr(torch, dtype)
    if args.distributed_state.distributed_type in ("MULTI_GPU", "DEEPSPEED"):
        kwargs["device_map"] = None
    return load_diffusion_model(name_or_path, **kwargs)


class DiffusionSFTTrainer(SFTTrainer):
    """Supervised fine-tuning of diffusion LMs (LLaDA, Dream, any bidirectional model with a mask token).

    Same arguments as TRL's ``SFTTrainer``. A model given as a string goes through
    :func:`trl_lift.load_diffusion_model`; ``peft_config`` and ``quantization_config`` work as in TRL
    (QLoRA is one argument). The token-weighting method comes from ``args.token_weighting`` unless a
    :class:`~trl_lift.TokenWeightingCallback` is passed in ``callbacks``.
    """

    _tag_names = ["trl", "sft", "trl-lift", "diffusion"]
    loss_is_scaled_for_ga = True  # compute_loss normalises over the accumulation window itself

    def __init__(self, model, args: DiffusionSFTConfig | None = None, *pos, quantization_config=None, **kwargs):
        if pos:
            raise TypeError("Pass DiffusionSFTTrainer's arguments after `args` by keyword.")
        if args is None:
            name = model if isinstance(model, str) else getattr(model.config, "_name_or_path", "model")
            args = DiffusionSFTConfig(f"{str(name).rstrip('/').split('/')[-1]}-diffusion-sft")
        elif not isinstance(args, DiffusionSFTConfig):
            raise TypeError(f"args must be a DiffusionSFTConfig, got {type(args).__name__}.")
        if isinstance(model, str):
            if kwargs.get("processing_class") is None:
                revision = (args.model_init_kwargs or {}).get("revision")
                kwargs["processing_class"] = load_diffusion_tokenizer(model, revision=revision)
            model = _load_model(model, args, quantization_config)
        elif quantization_config is not None:
            raise ValueError("quantization_config only applies to a model given by name; load the model quantized.")
        if not is_bidirectional(model):
            raise ValueError(
                "The model's attention is causal (config.is_causal is not False): masked-diffusion training of a "
                "causal model is silently wrong. Load it with trl_lift.load_diffusion_model, or set "
                "`model.config.is_causal = False` if the architecture is meant to be bidirectional."
            )
        self.facts = get_diffusion_facts(model)  # raises without a mask token
        super().__init__(model, args, **kwargs)
        # SFTTrainer gave the model TRL's fused LM head with the outputs losses.gold_log_probs reads.
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        base._trl_lift_fused_head = True
        self.supervise_padding = (
            self.facts.supervise_padding if args.supervise_padding is None else args.supervise_padding
        )
        if self.supervise_padding and self.facts.eos_token_id is None:
            raise ValueError("supervise_padding needs an EOS id: set model.config.eos_token_id.")
        if not any(isinstance(cb, TokenWeightingCallback) for cb in self.callback_handler.callbacks):
            self.add_callback(build_token_weighting(args.token_weighting, args))
        self._eval_generator = torch.Generator()

    # ---- the token-weighting callback (looked up each time: resuming replaces it) --------------
    @property
    def token_weighting(self) -> TokenWeightingCallback:
        return next(cb for cb in self.callback_handler.callbacks if isinstance(cb, TokenWeightingCallback))

    # ---- batches --------------------------------------------------------------------------------
    def _diffusion_batch(self, inputs: dict) -> DiffusionBatch:
        input_ids, attention_mask = inputs["input_ids"], inputs["attention_mask"]
        answer = answer_mask_from_labels(inputs["labels"], attention_mask, supervise_padding=self.supervise_padding)
        padding = attention_mask == 0
        if self.supervise_padding:
            if (attention_mask[:, 1:] > attention_mask[:, :-1]).any():
                raise ValueError(
                    "supervise_padding treats padding as the end of the answer, but this batch is padded on the left. "
                    "Use TRL's collator (right padding) or set supervise_padding=False."
                )
            # LLaDA's recipe: trailing padding is EOS content the model attends to and learns to produce.
            input_ids = input_ids.masked_fill(padding, self.facts.eos_token_id)
            attention_mask = torch.ones_like(attention_mask)
        return DiffusionBatch(input_ids, attention_mask, answer, self.facts.mask_token_id, padding_mask=padding)

    def _get_num_items_in_batch(self, batch_samples: list, device: torch.device):
        """Answer tokens over the accumulation window (and devices): the 'batch' normaliser."""
        if not batch_samples or "labels" not in batch_samples[0]:
            return None
        count = sum(
            answer_mask_from_labels(b["labels"], b["attention_mask"], supervise_padding=self.supervise_padding).sum()
            for b in batch_samples
        ).to(device)
        if self.args.average_tokens_across_devices and self.args.world_size > 1:
            count = self.accelerator.gather(count).sum()
        return count

    # ---- the loss -------------------------------------------------------------------------------
    def _scorer(self, model, batch: DiffusionBatch):
        """LIFT's scoring pass: gold-token scores of a noised input, without gradient."""

        def score(noised_ids, targets, *, train_mode: bool = True, rows=None):
            was_training = model.training
            model.train(train_mode)
            try:
                with torch.no_grad():
                    if rows is None:
                        return gold_log_probs(model, noised_ids, targets, attention_mask=batch.attention_mask)
                    part = gold_log_probs(
                        model, noised_ids[rows], targets[rows], attention_mask=batch.attention_mask[rows]
                    )
            finally:
                model.train(was_training)
            # Rows not scored get zeros (they need no scores: e.g. LIFT's vanilla rows).
            spread = lambda x: x.new_zeros((rows.numel(), *x.shape[1:])).index_put((rows,), x)  # noqa: E731
            return GoldScores(spread(part.log_probs), spread(part.entropy), spread(part.is_top1))

        return score

    def _eval_noise(self, batch: DiffusionBatch) -> list[NoisedBatch]:
        size, device, args = batch.input_ids.size(0), batch.input_ids.device, self.args
        if args.eval_timesteps is None:
            times = [sample_times(size, eps=args.time_epsilon, generator=self._eval_generator, device=device)]
        else:
            times = [t.expand(size) for t in grid_times(args.eval_timesteps, eps=args.time_epsilon, device=device)]
        return [noise_at_times(batch, t, generator=self._eval_generator, weighting=args.loss_weighting) for t in times]

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if model.training else "eval"
        batch = self._diffusion_batch(inputs)
        if mode == "train":
            noised_list = [self.token_weighting.noise(batch, scorer=self._scorer(model, batch), args=self.args)]
            accumulation = getattr(self, "current_gradient_accumulation_steps", 1)
        else:
            noised_list, accumulation, num_items_in_batch = self._eval_noise(batch), 1, None
        losses = [self._loss(model, batch, noised, mode, accumulation, num_items_in_batch) for noised in noised_list]
        loss = torch.stack(losses).mean()
        if mode == "train":
            tokens = self.accelerator.gather_for_metrics(inputs["attention_mask"].sum()).sum().item()
            self._total_train_tokens += tokens
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        return (loss, None) if return_outputs else loss

    def _loss(self, model, batch, noised: NoisedBatch, mode, accumulation, num_items_in_batch):
        # 1. Score only the tokens in the loss (chunked LM head, the family's shift applied).
        targets = batch.input_ids.masked_fill(noised.loss_weights <= 0, -100)
        scores = gold_log_probs(model, noised.input_ids, targets, attention_mask=batch.attention_mask)
        if noised.reweight is not None:  # one-pass selection from this very forward
            detached = GoldScores(scores.log_probs.detach(), scores.entropy.detach(), scores.is_top1)
            weights, extra = noised.reweight(detached)
            noised = replace(noised, loss_weights=weights, metrics={**noised.metrics, **extra}, reweight=None)
        in_loss = noised.loss_weights > 0
        # 2. Normalise over the accumulation window, so k micro-batches give the update of one k-times larger batch.
        normalization = self.args.loss_normalization or noised.normalization
        if normalization == "sequence":
            loss = diffusion_loss(
                scores.log_probs, noised.loss_weights, batch.answer_mask,
                normalization="sequence", num_sequences=batch.input_ids.size(0) * accumulation,
            )
        elif normalization == "batch" and num_items_in_batch is not None:
            loss = diffusion_loss(
                scores.log_probs, noised.loss_weights, batch.answer_mask,
                normalization="batch", num_items=num_items_in_batch,
            )
            if self.args.average_tokens_across_devices and self.args.world_size > 1:
                loss = loss * self.accelerator.num_processes  # DDP averages gradients over ranks
        else:
            loss = diffusion_loss(
                scores.log_probs, noised.loss_weights, batch.answer_mask, normalization=normalization
            ) / accumulation
        # 3. Metrics: masked-token accuracy, mask ratio, loss by band of t, the method's own.
        self._log_step_metrics(mode, batch, noised, scores, in_loss)
        return loss

    def _log_step_metrics(self, mode, batch, noised, scores, in_loss):
        gather = lambda x: self.accelerator.gather_for_metrics(x.detach().reshape(-1))  # noqa: E731
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
        for name, group in noised.sequence_groups.items():
            group = gather(group)
            if group.any():
                metrics[f"loss_{name}"].append(per_sequence[group].mean().item())
        for key, value in noised.metrics.items():
            metrics[key].append(float(value))

    # ---- evaluation: deterministic masks, loss only ----------------------------------------------
    def evaluate(self, *args, **kwargs):
        self._eval_generator.manual_seed(self.args.eval_seed)
        return super().evaluate(*args, **kwargs)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None
