"""Training the visual world model, stage by stage (DESIGN.md steps 2-6), and its bundle.

``train_visual`` runs, on camera bags (collected into the data folder when it is empty):

1. **encoder** (JEPA): a context encoder sees a frame with random blocks masked; a predictor maps
   its latent and a time offset dt in 0..``jepa_max_offset`` to the latent that the EMA target encoder
   (stop-gradient) gives the full frame t+dt; L2 in latent space. The EMA momentum follows a cosine
   schedule ``tau0 -> tau1`` indexed by the global step, so a resumed run (``resume=True``, from
   ``encoder_state.pt``, written every ``ckpt_every`` steps) continues the same schedule. The log
   carries a collapse monitor: the per-dimension std of the target latents over each batch.
2. **latents**: the target encoder's latent of every frame; its mean/std become the normaliser.
3. **decoder**: pixels from frozen normalised latents (for people only).
4. **lam**: the latent action VAE on consecutive latents; trained with no action topics at all.
5. **teacher**: bidirectional, windows of ``window`` frames, a random-length context, conditioned
   on the LAM's latent actions.
6. **student**: (a) regression on the teacher's outputs with teacher-forced inputs (the sequence
   is the true context followed by the teacher's own predictions); (b) self-forcing: the student
   streams the context through its KV cache, rolls ``horizon`` frames out on its own predictions
   and is trained across the whole rollout against the teacher and the data.
7. **adapter**: on the labelled episodes only (``labelled_fraction``), joint commands -> latent
   actions.

``train_dynamics`` is steps 5-6 on other action sources for the comparison in ``eval visual``:
real (normalised) joint commands on all or on the labelled episodes only.

A checkpoint folder holds ``checkpoint.yaml`` (config, spec, normalisers, metrics, data), one
``.pt`` per module, ``train_log.jsonl`` and ``latents.npz`` (and, for ``resume``, ``progress.json``
with the finished stages' metrics and ``encoder_state.pt``).

The package's modules: ``config`` (:class:`VisualConfig`, ``visual_preset``), ``data`` (camera bags
-> :class:`VideoEpisode`), ``stages`` (one function per stage), ``pipeline`` (``train_visual``,
``load_visual``, ``train_dynamics``), ``export`` (the bundle). Every public name is importable from
``wm_control.train.visual`` itself.
"""

from wm_control.train.visual.config import VisualConfig, visual_preset
from wm_control.train.visual.data import (
    VideoEpisode,
    ensure_video,
    labelled_split,
    load_video,
    read_video_only,
    unlabelled,
)
from wm_control.train.visual.export import export_visual, export_visual_graphs
from wm_control.train.visual.pipeline import (
    VisualModels,
    load_dynamics,
    load_visual,
    train_dynamics,
    train_visual,
)
from wm_control.train.visual.stages import (
    Windows,
    encode_all,
    latent_actions,
    make_student,
    make_teacher,
    momentum_at,
    probe_r2,
    probe_targets,
    ridge_apply,
    ridge_fit,
    train_adapter,
    train_decoder,
    train_encoder,
    train_lam,
    train_student,
    train_teacher,
)

__all__ = [
    "VideoEpisode", "VisualConfig", "VisualModels", "Windows", "encode_all", "ensure_video", "export_visual",
    "export_visual_graphs", "labelled_split", "latent_actions", "load_dynamics", "load_video", "load_visual",
    "make_student", "make_teacher", "momentum_at", "probe_r2", "probe_targets", "read_video_only", "ridge_apply", "ridge_fit",
    "train_adapter", "train_decoder", "train_dynamics", "train_encoder", "train_lam", "train_student",
    "train_teacher", "train_visual", "unlabelled", "visual_preset",
]
