"""``OSDFacePipeline``: one-step diffusion face restoration.

    z    = vae.encode(lq).latent_dist.sample() * 0.18215
    c    = VRE(lq)                                   (77 x 1024 prompt embeddings)
    eps  = unet(z, t=399, encoder_hidden_states=c)   (LoRA fused into the UNet)
    x0   = (z - sqrt(1 - abar_t) eps) / sqrt(abar_t)  in float64
    out  = clamp(vae.decode(x0 / 0.18215), -1, 1) * 0.5 + 0.5

as in the authors' released inference. The VRE and the VAE encoder are independent: on CUDA
they run on two streams at once (the paper's "parallelized" mode); ``parallel_streams = False``
runs them one after the other.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import PIL.Image
import torch
from diffusers import AutoencoderKL, DDIMScheduler, DiffusionPipeline, UNet2DConditionModel
from diffusers.loaders import StableDiffusionLoraLoaderMixin
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

from osdface import lazy
from osdface.choices import COLOR_FIX_NAMES
from osdface.images.conversion import postprocess, to_batch
from osdface.pipeline import cpu_tuning, lora
from osdface.pipeline.color import apply_color_fix
from osdface.pipeline.embedder import VisualRepresentationEmbedder
from osdface.pipeline.inputs import ImageInput, check_image
from osdface.pipeline.pickles import WeightFileError
from osdface.pipeline.stage_clock import StageClock as _StageClock
from osdface.weights import hub

# The text encoder of the without-VRE ablation: loaded only when asked for.
transformers = lazy.module("transformers")

TIMESTEP = 399
OUTPUT_TYPES = ("pil", "np", "pt")


class _EmptyFp32ListFilter(logging.Filter):
    """Drops diffusers' "There are modules in X that should be kept in float32: []" warning. Its
    list is empty for SD 2.1's UNet and VAE (they keep nothing in float32), so casting with
    ``to()`` is exactly what ``from_pretrained(torch_dtype=...)`` would do; diffusers 0.41-0.42
    warn on every cast all the same (they test the list against None). A non-empty list, which
    would apply, still gets through."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "that should be kept in float32: []." not in record.getMessage()


@contextmanager
def _without_empty_fp32_warning():
    logger = logging.getLogger("diffusers.models.modeling_utils")
    quiet = _EmptyFp32ListFilter()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


@dataclass
class OSDFacePipelineOutput(BaseOutput):
    """``images``: list of PIL images, (B, H, W, 3) float32 numpy, or (B, 3, H, W) tensor, all in
    [0, 1]; ``timings``: seconds per stage (``vre`` or ``text_encoder``, ``vae_encode``,
    ``unet``, ``vae_decode``) and ``total``."""

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor
    timings: dict[str, float] = field(default_factory=dict)


class OSDFacePipeline(DiffusionPipeline, StableDiffusionLoraLoaderMixin):
    """Restores 512x512 aligned faces in one UNet step.

    Components: ``vae`` and ``unet`` (SD 2.1 base, the OSDFace LoRA fused in), ``scheduler``
    (only its ``alphas_cumprod`` is used), ``embedder`` (the VRE) and, loaded on first use of
    a text prompt, ``text_encoder`` and ``tokenizer`` (the "without VRE" ablation).
    """

    model_cpu_offload_seq = "embedder->text_encoder->vae->unet"
    _optional_components = ["text_encoder", "tokenizer"]

    def __init__(
        self,
        vae: AutoencoderKL,
        unet: UNet2DConditionModel,
        scheduler: DDIMScheduler,
        embedder: VisualRepresentationEmbedder,
        text_encoder=None,
        tokenizer=None,
    ):
        super().__init__()
        self.register_modules(
            vae=vae,
            unet=unet,
            scheduler=scheduler,
            embedder=embedder,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
        )
        self.parallel_streams = True
        self.record_timings = True  # False: no per-stage timings, so no CUDA synchronisation
        self._sources: hub.ModelSources | None = None
        self._text_lock = threading.Lock()
        self._streams: tuple | None = None

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_pretrained(
        cls,
        weights: str | Path | None = None,
        base_model: str | Path | None = None,
        revision: str | None = None,
        base_revision: str | None = None,
        *,
        fuse_lora: bool = True,
        torch_dtype: torch.dtype | None = None,
    ) -> OSDFacePipeline:
        """Load the OSDFace weights and the SD 2.1 base model (each a Hub repo id or a local
        folder; defaults in ``osdface.weights.hub``, overridable by ``OSDFACE_WEIGHTS`` and
        ``OSDFACE_BASE_MODEL``) on CPU in float32, then ``torch_dtype`` for the UNet and VAE
        (the VRE stays float32). ``vre.safetensors`` (``osdface export``) is preferred to the two
        pickles when the weights repo has it. Raises ``hub.WeightsUnavailableError`` (also for a
        base model that is not SD 2.1 base: its scheduler must predict epsilon); a LoRA that is
        empty or does not apply completely raises ``osdface.pipeline.lora.LoraError``. ``pipe.load_report``
        says what was loaded (``osdface doctor`` prints it)."""
        sources = hub.ModelSources.resolve(weights, base_model, revision, base_revision)

        def weights_file(name: str) -> Path:
            return hub.fetch(sources.weights, name, sources.revision, env_var=hub.ENV_WEIGHTS)

        vre_path = hub.fetch_optional(sources.weights, hub.VRE_SAFETENSORS, sources.revision)
        projection_path = None
        if vre_path is None:
            vre_path, projection_path = weights_file(hub.VRE_CHECKPOINT), weights_file(hub.PROJECTION_WEIGHTS)
        lora_path = weights_file(hub.LORA_WEIGHTS)
        vae_root = hub.fetch_base_component(sources, "vae")
        unet_root = hub.fetch_base_component(sources, "unet")
        scheduler_root = hub.fetch_base_component(sources, "scheduler")

        if projection_path is None:
            with _reading(vre_path, sources.weights, hub.VRE_SAFETENSORS):
                embedder = VisualRepresentationEmbedder.from_safetensors(vre_path)
        else:
            with _reading(vre_path, sources.weights, f"{hub.VRE_CHECKPOINT} / {hub.PROJECTION_WEIGHTS}"):
                embedder = VisualRepresentationEmbedder.from_checkpoints(vre_path, projection_path)
        with _reading(vae_root / "vae", sources.base_model, "vae/"):
            vae = AutoencoderKL.from_pretrained(vae_root, subfolder="vae")
        with _reading(unet_root / "unet", sources.base_model, "unet/"):
            unet = UNet2DConditionModel.from_pretrained(unet_root, subfolder="unet")
        with _reading(scheduler_root / "scheduler", sources.base_model, "scheduler/"):
            scheduler = DDIMScheduler.from_pretrained(scheduler_root, subfolder="scheduler")
        hub.check_base_model(sources, scheduler.config, unet.config)

        pipe = cls(vae=vae, unet=unet, scheduler=scheduler, embedder=embedder)
        pipe._sources = sources
        with _reading(lora_path, sources.weights, hub.LORA_WEIGHTS):
            adapter_config = None
            if lora.saved_by_peft(lora_path):  # its alpha is in peft's adapter_config.json
                adapter_config = hub.fetch_optional(
                    sources.weights, lora.PEFT_ADAPTER_CONFIG, sources.revision
                )
            # Keys normalised to one layout first: diffusers drops mixed layouts' tensors.
            lora_report = lora.load_lora(pipe, lora_path, adapter_config=adapter_config)
        if fuse_lora:
            pipe.fuse_lora(components=["unet"], lora_scale=1.0)
            pipe.unload_lora_weights()  # drops the adapter layers; the fused weights stay
        for module in (pipe.vae, pipe.unet, pipe.embedder):
            module.eval().requires_grad_(False)
        pipe.load_report = {
            "sources": sources,
            "files": {"vre": vre_path, "projection": projection_path, "lora": lora_path},
            "vre": getattr(embedder, "load_report", None),
            "lora": lora_report,
        }
        cpu_tuning.apply_memory_format(pipe)  # the measured per-module choice (osdface.pipeline.cpu_tuning)
        if torch_dtype is not None:
            pipe.to(dtype=torch_dtype)  # the VRE ignores the dtype: it stays float32
        return pipe

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the model computes in: the UNet's (and the VAE's). diffusers' own ``dtype``
        is the first module's, the VRE, which stays float32 whatever the pipeline runs in."""
        return self.unet.dtype

    def load_report_lines(self) -> list[str]:
        """``load_report`` as lines for a terminal (the app prints these at start-up): sources and
        revisions, the VRE's tensors, the LoRA pairs applied."""
        sources, vre, lora_report = (
            self.load_report["sources"],
            self.load_report["vre"],
            self.load_report["lora"],
        )
        lines = [f"weights {sources.weights} @ {sources.revision or 'default'}; base {sources.base_model}"]
        if vre is not None:
            lines.append(
                f"VRE ({vre.source_format}): {vre.used} tensors used, {vre.projection} projection tensors, "
                f"ignored {vre.ignored or 'nothing'}"
            )
        lines.append(lora_report.summary())
        return lines

    def load_text_encoder(self) -> None:
        """Load SD 2.1's text encoder and tokenizer (for ``prompt=...``) from the base repo,
        onto the pipeline's device and dtype. Called on first use; call it up front to avoid
        the wait (on a ZeroGPU Space: at start-up)."""
        with self._text_lock:
            if self.text_encoder is not None:
                return

            sources = self._sources or hub.ModelSources.resolve()
            encoder_root = hub.fetch_base_component(sources, "text_encoder")
            tokenizer_root = hub.fetch_base_component(sources, "tokenizer")
            with _reading(encoder_root / "text_encoder", sources.base_model, "text_encoder/"):
                text_encoder = transformers.CLIPTextModel.from_pretrained(
                    encoder_root, subfolder="text_encoder"
                )
            with _reading(tokenizer_root / "tokenizer", sources.base_model, "tokenizer/"):
                tokenizer = transformers.CLIPTokenizer.from_pretrained(tokenizer_root, subfolder="tokenizer")
            text_encoder = text_encoder.to(self.unet.device, self.unet.dtype).eval().requires_grad_(False)
            self.register_modules(text_encoder=text_encoder, tokenizer=tokenizer)

    # ------------------------------------------------------------------ inputs

    def check_inputs(self, image, prompt, output_type: str, color_fix: str | None) -> None:
        images = list(image) if isinstance(image, list | tuple) else [image]
        if not images:
            raise ValueError("image is an empty list: pass at least one 512x512 aligned face.")
        for i, item in enumerate(images):
            where = f"image[{i}]" if len(images) > 1 or isinstance(image, list | tuple) else "image"
            check_image(item, where)
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
        if color_fix is not None and color_fix not in COLOR_FIX_NAMES:  # members are equal to their names
            raise ValueError(
                f"color_fix must be None or one of {', '.join(COLOR_FIX_NAMES)}, got {color_fix!r}"
            )
        if prompt is not None and not isinstance(prompt, str):
            if not (isinstance(prompt, list | tuple) and all(isinstance(p, str) for p in prompt)):
                raise ValueError(
                    f"prompt must be None, a string or a list of strings, got {type(prompt).__name__}"
                )

    # ------------------------------------------------------------------ the step

    @torch.no_grad()
    def __call__(
        self,
        image: ImageInput | Sequence[ImageInput],
        *,
        prompt: str | Sequence[str] | None = None,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
        output_type: str = "pil",
        color_fix: str | None = None,
        latents: torch.Tensor | None = None,
        prompt_embeds: torch.Tensor | None = None,
    ) -> OSDFacePipelineOutput:
        """Restore one or more 512x512 aligned faces.

        image: a PIL image, an (H, W, 3) RGB uint8 (or float in [0, 1]) array, a (3, H, W) or
            (B, 3, H, W) float tensor in [0, 1], or a list of these. Square inputs of another
            size are resized to 512 (bilinear), as the authors' script does.
        prompt: None conditions on the VRE (OSDFace). A string (or one per image) conditions
            on SD 2.1's text encoder instead: the "without VRE" ablation; "" is the null prompt.
        generator: seeds the VAE posterior sample; pass one generator per image to make a
            batch give exactly what separate calls give.
        latents, prompt_embeds: ``encode_latents`` / ``encode_condition`` outputs, to reuse.
        """
        # 1. Check and convert the inputs.
        self.check_inputs(image, prompt, output_type, color_fix)
        device, dtype = self._execution_device, self.unet.dtype
        clock = _StageClock(device, self.record_timings)
        wall = time.perf_counter()
        reference = to_batch(image).to(device)  # (B, 3, 512, 512) in [0, 1]
        lq = reference * 2.0 - 1.0  # float32: the VRE runs in float32; the VAE casts in _encode
        batch = lq.shape[0]
        prompts = [prompt] * batch if isinstance(prompt, str) else prompt
        if prompts is not None and len(prompts) != batch:
            raise ValueError(f"got {len(prompts)} prompts for {batch} images")
        if prompts is not None:
            self.load_text_encoder()

        # 2. Condition (VRE or text) and encode to latents: two CUDA streams when enabled.
        if latents is not None or prompt_embeds is not None:
            _check_precomputed(latents, prompt_embeds, prompt, batch)
            if prompt_embeds is None:
                prompt_embeds = self._condition(lq, prompts, clock, None)
            if latents is None:
                latents = self._encode(lq, generator, clock, None)
            latents, prompt_embeds = latents.to(device, dtype), prompt_embeds.to(device, dtype)
        elif device.type == "cuda" and self.parallel_streams:
            prompt_embeds, latents = self._condition_and_encode_parallel(lq, prompts, generator, clock)
        else:
            prompt_embeds = self._condition(lq, prompts, clock, None)
            latents = self._encode(lq, generator, clock, None)

        # 3. One UNet step at t = 399.
        clock.start("unet")
        eps = self.unet(latents, TIMESTEP, encoder_hidden_states=prompt_embeds, return_dict=False)[0]
        clock.stop("unet")

        # 4. x0 from the noise prediction, in float64 as the reference does; then decode.
        clock.start("vae_decode")
        alpha_bar = self.scheduler.alphas_cumprod[TIMESTEP].to(device=device, dtype=torch.float64)
        x0 = (latents.double() - (1.0 - alpha_bar).sqrt() * eps.double()) / alpha_bar.sqrt()
        x0 = x0.float().to(dtype) / self.vae.config.scaling_factor
        decoded = self.vae.decode(x0, return_dict=False)[0]
        restored = (decoded.clamp(-1.0, 1.0) * 0.5 + 0.5).float()
        clock.stop("vae_decode")

        # 5. Colour fix against the input, then the requested output type.
        restored = apply_color_fix(restored, reference.float(), color_fix)
        images = postprocess(restored, output_type)
        timings = clock.result()
        timings["total"] = time.perf_counter() - wall
        self.maybe_free_model_hooks()
        return OSDFacePipelineOutput(images=images, timings=timings)

    @torch.no_grad()
    def encode_latents(self, image, generator=None) -> torch.Tensor:
        """The scaled VAE latents ``__call__`` would sample for ``image`` with ``generator``."""
        self.check_inputs(image, None, "pt", None)
        lq = to_batch(image).to(self._execution_device) * 2.0 - 1.0  # float32, as in __call__
        return self._encode(lq, generator, _StageClock(lq.device), None)

    @torch.no_grad()
    def encode_condition(self, image, prompt: str | Sequence[str] | None = None) -> torch.Tensor:
        """The (B, 77, 1024) condition ``__call__`` would use (VRE, or text for a prompt)."""
        self.check_inputs(image, prompt, "pt", None)
        lq = to_batch(image).to(self._execution_device) * 2.0 - 1.0  # float32, as in __call__
        prompts = [prompt] * lq.shape[0] if isinstance(prompt, str) else prompt
        if prompts is not None:
            self.load_text_encoder()
        return self._condition(lq, prompts, _StageClock(lq.device), None)

    def _condition(self, lq, prompts, clock: _StageClock, stream) -> torch.Tensor:
        if prompts is None:
            clock.start("vre", stream)
            embeds = self.embedder(lq.float()).prompt_embeds.to(self.unet.dtype)
            clock.stop("vre")
            return embeds
        clock.start("text_encoder", stream)
        ids = self.tokenizer(
            list(prompts),
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids.to(lq.device)
        embeds = self.text_encoder(ids, return_dict=False)[0].to(self.unet.dtype)
        clock.stop("text_encoder")
        return embeds

    def _encode(self, lq, generator, clock: _StageClock, stream) -> torch.Tensor:
        clock.start("vae_encode", stream)
        posterior = self.vae.encode(lq.to(self.vae.dtype), return_dict=False)[0]
        # posterior.sample draws its noise in the VAE's dtype, and torch draws another sequence
        # for each dtype: a seed would give a different face in bfloat16 or float16 than in
        # float32. Drawn in float32 and cast, the noise is the same in every dtype (float32's
        # latents are unchanged: this is what sample() does there).
        noise = randn_tensor(posterior.mean.shape, generator=generator, device=posterior.mean.device)
        latents = (
            posterior.mean + posterior.std * noise.to(posterior.mean.dtype)
        ) * self.vae.config.scaling_factor
        clock.stop("vae_encode")
        return latents

    def to(self, *args, **kwargs) -> OSDFacePipeline:
        """diffusers' ``to``; on a CUDA device it also builds the two side streams now, so the
        first request does not pay for them."""
        with _without_empty_fp32_warning():
            pipeline = super().to(*args, **kwargs)
        if pipeline.device.type == "cuda" and pipeline.parallel_streams:
            pipeline.prepare_streams(pipeline.device)
        return pipeline

    def prepare_streams(self, device: torch.device) -> tuple:
        """The (condition, encode) CUDA streams of ``device``, built once and reused."""
        device = torch.device(device)
        if device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        if self._streams is None or self._streams[0].device != device:
            self._streams = (torch.cuda.Stream(device), torch.cuda.Stream(device))
        return self._streams

    def _condition_and_encode_parallel(self, lq, prompts, generator, clock):
        condition_stream, encode_stream = self.prepare_streams(lq.device)
        main = torch.cuda.current_stream(lq.device)
        condition_stream.wait_stream(main)
        encode_stream.wait_stream(main)
        with torch.cuda.stream(condition_stream):
            prompt_embeds = self._condition(lq, prompts, clock, condition_stream)
        with torch.cuda.stream(encode_stream):
            latents = self._encode(lq, generator, clock, encode_stream)
        main.wait_stream(condition_stream)
        main.wait_stream(encode_stream)
        # Tensors made on a side stream and used on the main one must not be recycled early.
        prompt_embeds.record_stream(main)
        latents.record_stream(main)
        return prompt_embeds, latents


class _reading:
    """Context manager: a failure while reading a fetched file becomes a WeightsUnavailableError
    that names the file and the fix. A ``WeightFileError`` says which of the step's files was
    bad (the VRE step reads the checkpoint and the projection): that one is named."""

    def __init__(self, path: Path, source: str, filename: str):
        self.path, self.source, self.filename = path, source, filename

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None or isinstance(exc, hub.WeightsUnavailableError):
            return False
        if isinstance(exc, WeightFileError):
            raise hub.corrupt_file_error(exc.path, self.source, exc.path.name, exc.reason) from exc
        if isinstance(exc, Exception):
            raise hub.corrupt_file_error(self.path, self.source, self.filename, exc) from exc
        return False


def _check_precomputed(latents, prompt_embeds, prompt, batch: int) -> None:
    if prompt_embeds is not None and prompt is not None:
        raise ValueError("pass either prompt or prompt_embeds, not both")
    for name, value, ndim in (("latents", latents, 4), ("prompt_embeds", prompt_embeds, 3)):
        if value is not None and (
            not isinstance(value, torch.Tensor) or value.ndim != ndim or len(value) != batch
        ):
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ValueError(f"{name} must be a {ndim}-D tensor with one row per image ({batch}), got {got}")
