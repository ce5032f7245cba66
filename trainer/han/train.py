"""Training the HAN trainer's networks: the HAN ablation rows
(:data:`VARIANTS`) and the CNN and LSTM baselines, each through the shared
loop (:func:`trainer.loop.fit`), keeping the epoch of the best validation
micro-F1, then scored with p tuned on validation
(:mod:`trainer.han.evaluation`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from tagcore.families import han
from trainer import metrics
from trainer.han.baselines import NETWORKS, CNN, HierarchicalLSTM, vector_baseline
from trainer.han.data import Prepared
from trainer.han.evaluation import evaluate_probs, tune_threshold

#: Ablation rows: name -> Config changes (docs/models/han.md).
VARIANTS = {
    "HAN": dict(label_graph=False, soft_weight=0.0, identity_weight=0.0),
    "+label graph": dict(label_graph=True, soft_weight=0.0),
    "+soft training": dict(label_graph=True, soft_weight=1.0),
    "+soft targets (T)": dict(label_graph=True, soft_weight=1.0),  # temperature set from --temperature
    "literal regulariser": dict(label_graph=True, soft_weight=1.0),  # identity weight negated
    # The control of "+soft training": what eq. 4 is while G = I, the plain
    # HAN's BCE counted twice (y' = y I = y, G fixed at I and not trained).
    "doubled BCE": dict(label_graph=False, soft_weight=1.0, identity_weight=0.0),
}


class AlbumSet(torch.utils.data.Dataset):
    """Albums as (word ids (reviews, words), labels (m,)) pairs."""

    def __init__(self, ids: Sequence[np.ndarray], y: np.ndarray):
        self.ids, self.y = ids, y

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i):
        return self.ids[i], self.y[i]


def collate(batch):
    """(ids padded to (batch, reviews, words), labels (batch, m))."""
    return han.collate_albums([b[0] for b in batch]), torch.from_numpy(np.stack([b[1] for b in batch]))


@torch.inference_mode()
def predict_ids(model: nn.Module, ids: Sequence[np.ndarray], *, batch: int = 256) -> np.ndarray:
    """Sigmoid of the model's logits for every album, (n, n_labels)."""
    model.eval()
    device = next(model.parameters()).device
    out = [torch.sigmoid(model(han.collate_albums(ids[s : s + batch]).to(device))).float().cpu().numpy()
           for s in range(0, len(ids), batch)]
    return np.concatenate(out)


def graph_change(model: nn.Module) -> dict:
    """How far the model's label graph moved from the identity: the largest
    ``|G - I|`` entry and the Frobenius norm ``||G - I||``; empty for a
    model without a learned graph (the plain HAN, the CNN, the LSTM)."""
    graph = getattr(model, "graph", None)
    if graph is None or not graph.requires_grad:
        return {}
    delta = graph.detach().float().cpu() - torch.eye(graph.shape[0])
    return {"graph_max_delta": float(delta.abs().max()), "graph_fro_delta": float(torch.linalg.norm(delta))}


def optimizer_groups(model: nn.Module, *, lr: float, graph_lr: float | None = None) -> list[dict]:
    """Adam's parameter groups of the trained weights: one group at ``lr``,
    or, with ``graph_lr``, the label graph G (``model.graph``) in a group of
    its own at that rate. Frozen weights (the plain HAN's G) are left out."""
    graph = getattr(model, "graph", None)
    own = graph_lr is not None and graph is not None and graph.requires_grad
    rest = [q for q in model.parameters() if q.requires_grad and not (own and q is graph)]
    return [{"params": rest, "lr": lr}] + ([{"params": [graph], "lr": graph_lr}] if own else [])


def train_network(p: Prepared, model: nn.Module, loss_fn: Callable, args, *, seed: int, name: str, log=print):
    """Train ``model`` on the training albums through :func:`trainer.loop.fit`,
    keeping the epoch of the best validation micro-F1 (A.1) of its
    predictions (``sigmoid(z G)`` with a label graph), p tuned on validation
    at each epoch; G's step is ``--graph-lr`` when given, else ``--lr``.
    Returns the FitResult."""
    from trainer.loop import fit, loop_config

    val_ids, val_y = [p.ids[i] for i in p.val], p.y[p.val]

    def evaluate(m):
        # Micro-F1 at the best p of the grid: at a fixed p = 0.2 it stays
        # flat while every label but the commonest is below p, and early
        # stopping would end the run before the ranking is used.
        probs = predict_ids(m, val_ids)
        p_best = tune_threshold(val_y, probs)
        return {"val_micro_f1": metrics.micro_f1(y_true=val_y, y_pred=probs >= p_best), "val_p": p_best,
                "val_micro_f1_at_0.2": metrics.micro_f1(y_true=val_y, y_pred=probs >= 0.2), **graph_change(m)}

    slug = "".join(ch if ch.isalnum() else "-" for ch in name.lower()).strip("-")
    config = replace(loop_config(args, seed=seed, name=slug), monitor="val_micro_f1", mode="max", log_every=0,
                     label=name)
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(optimizer_groups(model, lr=args.lr, graph_lr=getattr(args, "graph_lr", None)))
    result = fit(model, optimizer=optimizer, train_set=AlbumSet([p.ids[i] for i in p.train], p.y[p.train]),
                 collate=collate, loss_fn=loss_fn, evaluate=evaluate, config=config)
    model.to("cpu")
    log(f"{name}: best epoch {result.best_epoch} (validation micro-F1 {result.best_value:.3f}), "
        f"{len(result.history)} epochs in {result.seconds:.0f} s")
    return result


def han_config(p: Prepared, args, variant: str) -> han.Config:
    changes = dict(VARIANTS[variant])
    extra = {"identity_weight": args.identity_weight}
    if variant == "+soft targets (T)":
        extra["temperature"] = args.temperature
    if variant == "literal regulariser":
        extra["identity_weight"] = -abs(args.identity_weight)
    extra.update(changes)
    return han.Config(vocabulary=list(p.vocabulary.tokens), n_labels=len(p.labels), embed_dim=args.embed_dim,
                      hidden=args.hidden, attention_dim=args.hidden, max_reviews=args.max_reviews,
                      max_words=args.max_words, review_unit="sentence" if p.layout == "netease" else "paragraph",
                      **extra)


def prior_bias(y_train: np.ndarray) -> torch.Tensor:
    """log-odds of each label's training frequency, (m,): the output bias
    that makes an untrained network predict the base rates."""
    share = np.clip(np.asarray(y_train, dtype=np.float64).mean(0), 1e-3, 1 - 1e-3)
    return torch.from_numpy(np.log(share / (1 - share))).float()


def new_han(p: Prepared, config: han.Config, seed: int) -> han.Model:
    """A HAN with the skip-gram vectors in its embedding table and the
    output bias at the training labels' log-odds."""
    torch.manual_seed(seed)
    model = han.Model(config)
    with torch.no_grad():
        model.embedding.weight.copy_(torch.from_numpy(p.embeddings))
        model.output.bias.copy_(prior_bias(p.y[p.train]))
    return model


@dataclass
class VariantRun:
    """One HAN ablation row trained with one seed: the model, the loop's
    result, its figures (:func:`trainer.han.evaluation.evaluate_probs`,
    epochs, seconds) and Table 4's F1 of the most and least frequent labels."""

    model: han.Model
    fitted: object  # trainer.loop.FitResult
    figures: dict
    extremes: dict


def fit_variant(p: Prepared, args, variant: str, *, seed: int, log=print) -> VariantRun:
    """Train and score the ablation row ``variant`` with ``seed``."""
    model = new_han(p, han_config(p, args, variant), seed)
    fitted = train_network(p, model, han.model_loss(model), args, seed=seed, name=f"{variant} seed {seed}", log=log)
    probs = predict_ids(model, p.ids)
    figures = evaluate_probs(p, probs)
    figures.update(epochs=len(fitted.history), best_epoch=fitted.best_epoch, seconds=round(fitted.seconds, 1),
                   **graph_change(model))  # G at the kept epoch (the loop restores its weights)
    extremes = metrics.frequency_extremes_f1(y_train=p.y[p.train], y_true=p.y[p.test],
                                             y_pred=probs[p.test] >= figures["threshold"], labels=p.labels)
    return VariantRun(model, fitted, figures, extremes)


def fit_baseline(p: Prepared, args, name: str, *, seed: int, log=print) -> dict:
    """Fit and score the baseline ``name`` with ``seed``: its figures
    (epochs too for the networks) and the seconds it took."""
    started = time.monotonic()
    if name in NETWORKS:
        torch.manual_seed(seed)
        net = (CNN(p.embeddings, len(p.labels), args.hidden // 2) if name == "CNN"
               else HierarchicalLSTM(p.embeddings, len(p.labels), args.hidden))
        with torch.no_grad():
            net.output.bias.copy_(prior_bias(p.y[p.train]))
        fitted = train_network(p, net, lambda logits, y: F.binary_cross_entropy_with_logits(logits, y),
                               args, seed=seed, name=f"{name} seed {seed}", log=log)
        probs = predict_ids(net, p.ids)
        extra = {"epochs": len(fitted.history), "best_epoch": fitted.best_epoch}
    else:
        probs = vector_baseline(name, p, seed=seed, k=args.knn_k)
        extra = {}
    return {**evaluate_probs(p, probs), **extra, "seconds": round(time.monotonic() - started, 1)}
