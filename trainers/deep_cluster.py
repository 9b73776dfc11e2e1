"""Deep clustering pseudo-labels for the cleaning set (Caron et al. 2018).

Each epoch: embed every cleaning image with the current model, run spherical k-means (faiss)
on the normalised embeddings, and re-initialise the linear head that the cluster loss trains.
With `cluster_source: teacher`, the pseudo-labels are a fixed teacher model's zero-shot
predictions over the eval class names (the paper's SigLIP "upper bound"), computed once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import faiss
import numpy as np
import torch
from torch import Tensor, nn

from trainers.checkpoint import load_checkpoint, load_weights
from trainers.data import TrainData, build_train_data
from trainers.data.loader import resolve_num_workers
from trainers.errors import ConfigError
from trainers.evaluate import Prompts, class_embeddings
from trainers.losses import ClusterLoss
from trainers.models import ModelInfo, create_model, get_tokenizer, normalize

if TYPE_CHECKING:
    from trainers.loop import TrialContext

Tokenizer = Callable[[list[str]], Tensor]


class DeepClusterObjective:
    def __init__(self, ctx: TrialContext, plain_data: TrainData) -> None:
        """`plain_data`: the cleaning set in order, without augmented views or shuffling."""
        self.ctx = ctx
        self.data = plain_data
        n_samples = plain_data.num_samples
        cfg = ctx.cfg.loss
        self.weight = cfg.cluster_weight
        self.source = cfg.cluster_source
        if self.source == "teacher":
            self.n_classes = len(ctx.eval_data.classnames)
        else:
            # faiss needs at least one point per centroid; a cleaning set smaller than the
            # configured 1000 clusters (the embedded default) gets n/2 clusters instead.
            self.n_classes = max(2, min(cfg.n_clusters, n_samples // 2))
        self.loss = ClusterLoss(ctx.info.embed_dim, self.n_classes).to(ctx.device)
        self.labels: Tensor | None = None
        self._teacher_labels: Tensor | None = None

    def parameters(self) -> Iterator[nn.Parameter]:
        return self.loss.parameters()

    def prepare(self, epoch: int) -> None:
        if self.source == "teacher":
            if self._teacher_labels is None:
                self._teacher_labels = teacher_pseudo_labels(self.ctx)
            self.labels = self._teacher_labels
        else:
            self.labels = self._kmeans_labels(epoch)
        self.loss.reset(seed=self.ctx.cfg.seed * 1000 + epoch)

    def __call__(self, image_features: Tensor, index: Tensor) -> Tensor:
        assert self.labels is not None, "prepare() runs before every epoch"
        return self.loss(image_features, self.labels.to(image_features.device)[index])

    def _kmeans_labels(self, epoch: int) -> Tensor:
        ctx = self.ctx
        feats, idx = embed_images(ctx.model, self.data, ctx.info, ctx)
        x = np.ascontiguousarray(feats.numpy(), dtype=np.float32)
        km = faiss.Kmeans(
            x.shape[1],
            self.n_classes,
            niter=20,
            spherical=True,
            seed=ctx.cfg.seed * 1000 + epoch,
            verbose=False,
        )
        km.train(x)
        _, assign = km.index.search(x, 1)
        return _scatter(idx, torch.from_numpy(assign[:, 0]).long())


@torch.no_grad()
def embed_images(
    model: nn.Module, data: TrainData, info: ModelInfo, ctx: TrialContext
) -> tuple[Tensor, Tensor]:
    """Normalised image embeddings of `data` (decoded for `model`), in index order.

    `info` is `model`'s own preprocessing: its mean and std normalise the images.
    """
    was = model.training
    model.eval()
    feats, idxs = [], []
    for batch in data:
        images = normalize(batch.image.to(ctx.device), info)
        with ctx.autocast():
            f = model.encode_image(images, normalize=True)
        feats.append(f.float().cpu())
        idxs.append(batch.index)
    model.train(was)
    return torch.cat(feats), torch.cat(idxs)


def load_teacher(ctx: TrialContext) -> tuple[nn.Module, ModelInfo, Tokenizer]:
    """The teacher model named by `loss.teacher_model` (or its checkpoint), on the device."""
    cfg = ctx.cfg.loss
    if not cfg.teacher_checkpoint:
        raise ConfigError("loss.teacher_checkpoint is required for cluster_source 'teacher'")
    ckpt = load_checkpoint(cfg.teacher_checkpoint)
    name = cfg.teacher_model or ckpt.model_name or ctx.info.name
    teacher, info = create_model(name)
    load_weights(teacher, ckpt, model_name=name)
    return teacher.to(ctx.device), info, get_tokenizer(name)


def teacher_view(ctx: TrialContext, info: ModelInfo, tokenizer: Tokenizer) -> TrainData:
    """The cleaning set in order, decoded for the teacher: at its image size, by its resize
    mode (its normalisation is applied by `embed_images`), never the student's."""
    cfg = ctx.cfg
    return build_train_data(
        cfg.data,
        cfg.poison,
        image_size=info.image_size,
        tokenizer=tokenizer,
        ssl=False,
        seed=cfg.seed,
        drop_last=False,
        shuffle=False,
        resize_mode=info.resize_mode,
        num_workers=resolve_num_workers(
            cfg.data.num_workers, cfg.threads, on_gpu=ctx.device.type == "cuda"
        ),
    )


def teacher_pseudo_labels(ctx: TrialContext) -> Tensor:
    """The teacher's zero-shot predictions over the eval class names, per cleaning pair,
    with the teacher's own transform (SigLIP: 0.5 / 0.5, squashed to its size)."""
    teacher, info, tokenizer = load_teacher(ctx)
    prompts = Prompts.build(tokenizer, ctx.eval_data.classnames)
    classifier = class_embeddings(teacher, prompts, ctx.device)
    feats, idx = embed_images(teacher, teacher_view(ctx, info, tokenizer), info, ctx)
    preds = (feats.to(ctx.device) @ classifier.float()).argmax(dim=1).cpu()
    return _scatter(idx, preds)


def _scatter(index: Tensor, values: Tensor) -> Tensor:
    out = torch.full((int(index.max()) + 1,), -100, dtype=torch.long)  # -100: ignored by CE
    out[index] = values
    return out
