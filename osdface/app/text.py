"""The app's page texts and style (app.py builds the page from them)."""

PAPER_URL = "https://arxiv.org/abs/2411.17163"
CODE_URL = "https://github.com/jkwang28/OSDFace"

INTRO = f"""
# OSDFace Studio
**One-step diffusion face restoration** (OSDFace, CVPR 2025) · [paper]({PAPER_URL}) · [authors' code]({CODE_URL})

Upload a degraded portrait (or a whole photo with several faces) and press **Restore**. Switch on
**atmospheric turbulence** to degrade it first as a long-range camera would see it, and
**compare without VRE** to see what the visual representation embedder adds.
"""

ABLATION_NOTE = (
    "Not the paper's ablation: this conditions the OSDFace LoRA UNet on SD 2.1's text encoder, while "
    'the paper\'s "w/o VRE" model was trained that way; ours is not retrained, so do not read it '
    "as the paper's ablation numbers."
)
ABOUT = f"""
**OSDFace** restores a face in a *single* diffusion step. The degraded face is encoded by
Stable Diffusion 2.1's VAE, the UNet (fine-tuned with LoRA) predicts the noise once at
timestep 399, and the clean latent is decoded: about 0.1 s per face on a GPU instead of the tens
of steps of earlier diffusion restorers.

**VRE, the visual representation embedder.** Instead of a text prompt, the UNet's
cross-attention is conditioned on what the degraded face itself looks like: a VQ tokenizer
trained on faces turns the input into 77 visual tokens from a face codebook, which a small
projection maps into SD 2.1's prompt space. **Without VRE** the same
one-step model is conditioned on SD 2.1's text encoder instead, with your prompt or the empty
(null) prompt, and so knows much less about the face. {ABLATION_NOTE}

**Atmospheric turbulence.** Faces seen over a long horizontal path (here 20 to 40 km through
air of constant strength Cn² = 1e-16 m^-2/3, a 0.2 m aperture) are warped by random,
spatially varying tilts and smeared by short-exposure blur. The simulator follows Chimitt &
Chan (2020); the longer the path, the stronger both effects. OSDFace was not trained on such
images: this is a test of how far it generalises.

**Identity scores** compare ArcFace embeddings of each face with the clean input face: a
restoration can look sharp and still drift away from the person.

Paper: Jingkai Wang et al., *OSDFace: One-Step Diffusion Model for Face Restoration*, CVPR 2025,
[arXiv:2411.17163]({PAPER_URL}). Code and weights: [{CODE_URL}]({CODE_URL}).
"""

SHARE_NOTE = (
    "**This page is public:** it is served on a gradio.live share link that anyone who has the link "
    "can open, for up to 1 week (Gradio's limit, best effort) or until this app stops."
)
RESTORE_UNAVAILABLE = "Restore is off: the model weights are missing (see the banner above)"
# The missing-weights banner's heading and fix, also printed on the terminal at start-up.
WEIGHTS_MISSING = "Restoring is unavailable: the model weights could not be loaded."
WEIGHTS_FIX = "python app.py --weights FOLDER_OR_REPO --base-model FOLDER_OR_REPO"
SLIDER_HEIGHT = 512
# Prior for the time-left estimate until stages are measured (a GPU takes well under a second).
GPU_SECONDS_PER_FACE = 0.2
# Measured (README, "The app"): the full-size model restores one 512x512 face in 39-43 s on 2 Zen 3
# cores in float32, 0.85x that with the per-module channels_last now applied; well under a second on a GPU.
CPU_SECONDS_PER_FACE = 35

CSS = """
.osd-banner { border: 2px solid #d9534f; background: rgba(217, 83, 79, 0.10); border-radius: 8px;
              padding: 12px 16px; }
.osd-banner strong { color: #d9534f; }
.osd-banner .osd-reason { white-space: pre-wrap; font-family: ui-monospace, monospace; font-size: 0.9em; }
.osd-notes { font-size: 0.92em; opacity: 0.9; }
/* Messages are plain text with one item a line: keep the lines in the toast. */
[data-testid="toast-text"] { white-space: pre-line; }
/* The before/after slider shows the whole image at its aspect ratio. */
#before-after img { object-fit: contain; }
"""
