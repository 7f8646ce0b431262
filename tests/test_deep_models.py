"""Forward/backward of every deep model on a tiny batch: shapes, empty batches, scoring, save/load."""

from __future__ import annotations

import io
from typing import Any

import pytest
import torch

from vidrec.config import load_config
from vidrec.models.deep import schema as S
from vidrec.models.deep.networks import MODEL_CLASSES, build_model, load_model, model_config
from vidrec.models.deep.params import model_params

N_USERS, N_ITEMS, MAX_LEN, TOKENS, TEXT_LEN = 12, 20, 5, 6, 7

CONFIGS: dict[str, dict[str, Any]] = {
    "ncf": dict(
        n_users=N_USERS, n_items=N_ITEMS, embedding_dim=8, mlp_dim=8, mlp_layers=[16, 8], dropout=0.1
    ),
    "multvae": dict(n_items=N_ITEMS, hidden_dim=16, latent_dim=4, dropout=0.5, beta_max=0.2, anneal_steps=10),
    "sequence": dict(
        n_items=N_ITEMS,
        max_len=MAX_LEN,
        hidden_dim=16,
        num_blocks=2,
        num_heads=2,
        dropout=0.1,
        target_window=2,
    ),
    "gru": dict(
        n_items=N_ITEMS,
        max_len=MAX_LEN,
        hidden_dim=16,
        num_layers=2,
        dropout=0.1,
        target_window=2,
        logq_correction=True,
    ),
    "text": dict(
        n_items=N_ITEMS,
        num_buckets=64,
        max_tokens=TOKENS,
        embedding_dim=8,
        temperature=0.1,
        recent=3,
        logq_correction=True,
        encoder="cnn",
        max_text_len=TEXT_LEN,
        kernel_sizes=[2, 3],
        channels=4,
    ),
    "fusion": dict(
        n_users=N_USERS,
        n_items=N_ITEMS,
        visual_dim=4,
        audio_dim=0,
        embedding_dim=8,
        num_buckets=64,
        max_tokens=TOKENS,
        num_negatives=5,
        id_dropout=0.3,
    ),
}


def i32(rows: list[Any]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.int32)


TRAIN_BATCHES: dict[str, dict[str, torch.Tensor]] = {
    "ncf": {
        S.COL_USER_IDX: i32([0, 1, 2, 3]),
        S.COL_ITEM_IDX: i32([1, 2, 3, 4]),
        S.COL_LABEL: torch.tensor([1.0, 0, 1, 0]),
    },
    "multvae": {S.COL_USER_IDX: i32([0, 1, 2]), S.COL_BAG: i32([[1, 2, -1], [3, -1, -1], [0, 5, 6]])},
    "sequence": {
        S.COL_USER_IDX: i32([0, 1, 2]),
        S.COL_SEQ: i32([[-1, -1, -1, 1, 2, 3], [-1, -1, -1, -1, 4, 5], [0, 1, 2, 3, 4, 5]]),
    },
    "text": {S.COL_ITEM_A: i32([1, 2, 3, 1]), S.COL_ITEM_B: i32([2, 3, 4, 2])},
    "fusion": {S.COL_USER_IDX: i32([0, 1, 2, 3]), S.COL_ITEM_IDX: i32([1, 2, 3, 4])},
}
TRAIN_BATCHES["gru"] = TRAIN_BATCHES["sequence"]
SCORE_BATCHES: dict[str, dict[str, torch.Tensor]] = {
    "ncf": {S.COL_USER_IDX: i32([0, 5, 7])},
    "multvae": {S.COL_BAG: i32([[1, 2, -1], [3, -1, -1], [-1, -1, -1]])},
    "sequence": {S.COL_SEQ: i32([[-1, -1, 1, 2, 3], [-1, -1, -1, -1, 4], [0, 1, 2, 3, 4]])},
    "text": {S.COL_SEQ: i32([[-1, -1, 1, 2, 3], [-1, -1, -1, -1, 4], [0, 1, 2, 3, 4]])},
    "fusion": {S.COL_USER_IDX: i32([0, 5, 7])},
}
SCORE_BATCHES["gru"] = SCORE_BATCHES["sequence"]


def side_table() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        S.COL_ITEM_IDX: torch.arange(N_ITEMS, dtype=torch.int32),
        S.COL_TOKENS: torch.randint(1, 64, (N_ITEMS, TOKENS), generator=g, dtype=torch.int32),
        # right-padded text of 0..TEXT_LEN tokens (item 0 has none)
        S.COL_TEXT: torch.randint(1, 64, (N_ITEMS, TEXT_LEN), generator=g, dtype=torch.int32)
        * (torch.arange(TEXT_LEN)[None, :] < (torch.arange(N_ITEMS) % (TEXT_LEN + 1))[:, None]),
        S.COL_KNOWN: (torch.arange(N_ITEMS) < 15).int(),
        S.COL_FREQ: torch.arange(N_ITEMS, dtype=torch.int32) * 3,
        S.COL_VISUAL: torch.randn(N_ITEMS, 4, generator=g),
    }


def make(name: str) -> Any:
    torch.manual_seed(0)
    model = build_model(name, CONFIGS[name])
    model.attach_side_table(side_table())
    return model


@pytest.mark.parametrize("name", sorted(MODEL_CLASSES))
def test_forward_backward_gives_a_finite_loss_and_a_gradient_for_every_parameter(name: str) -> None:
    model = make(name).train()
    model.on_train_step(3)
    batch = TRAIN_BATCHES[name]
    assert set(model.train_columns) <= set(batch)
    loss = model(batch)
    assert loss.shape == () and torch.isfinite(loss)
    loss.backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []


@pytest.mark.parametrize("name", sorted(MODEL_CLASSES))
def test_an_empty_batch_gives_zero_loss_with_a_graph_over_every_parameter(name: str) -> None:
    # a DDP rank whose shard ran out steps with an empty batch: loss 0, gradient 0 everywhere
    model = make(name).train()
    empty = {k: v[:0] for k, v in TRAIN_BATCHES[name].items()}
    loss = model(empty)
    assert float(loss.detach()) == 0.0
    loss.backward()
    for n, p in model.named_parameters():
        assert p.grad is not None, n
        assert float(p.grad.abs().sum()) == 0.0, n


@pytest.mark.parametrize("name", sorted(MODEL_CLASSES))
def test_score_gives_one_finite_score_per_user_and_item(name: str) -> None:
    model = make(name).eval()
    batch = SCORE_BATCHES[name]
    assert set(model.score_columns) <= set(batch)
    with torch.no_grad():
        scores = model.score(batch)
    assert scores.shape == (3, N_ITEMS)
    assert torch.isfinite(scores).all()


@pytest.mark.parametrize("name", sorted(MODEL_CLASSES))
def test_a_saved_model_loads_back_with_equal_scores(name: str) -> None:
    model = make(name).eval()
    buf = io.BytesIO()
    torch.save({"model": name, "config": model.config, "state_dict": model.state_dict()}, buf)
    loaded = load_model(torch.load(io.BytesIO(buf.getvalue()), weights_only=False))
    with torch.no_grad():
        assert torch.equal(model.score(SCORE_BATCHES[name]), loaded.score(SCORE_BATCHES[name]))


def test_multvae_embeds_users_with_the_encoder_mean() -> None:
    model = make("multvae").eval()
    with torch.no_grad():
        emb = model.embed(SCORE_BATCHES["multvae"])
        mu, _ = model.encode(model.multi_hot(SCORE_BATCHES["multvae"][S.COL_BAG]))
    assert emb.shape == (3, 4)
    assert torch.equal(emb, mu)


def test_multvae_multi_hot_ignores_padding_and_anneals_beta() -> None:
    model = make("multvae")
    x = model.multi_hot(i32([[0, 2, -1], [-1, -1, -1]]))
    assert x[0].nonzero().flatten().tolist() == [0, 2]
    assert float(x[1].sum()) == 0.0
    model.on_train_step(5)
    assert model.beta == pytest.approx(0.1)
    model.on_train_step(500)
    assert model.beta == pytest.approx(0.2)


def test_sequence_predictions_do_not_look_ahead() -> None:
    # causal attention: the hidden state at a position ignores later items
    model = make("sequence").eval()
    a = i32([[-1, 1, 2, 3, 4]])
    b = i32([[-1, 1, 2, 3, 9]])
    with torch.no_grad():
        ha, hb = model.encode(a), model.encode(b)
    assert torch.allclose(ha[:, :4], hb[:, :4])
    assert not torch.allclose(ha[:, 4], hb[:, 4])


def test_gru_reads_the_history_in_order_ignoring_the_padding() -> None:
    # the state after the last item depends on the items' order, not on how much padding precedes them
    model = make("gru").eval()
    with torch.no_grad():
        short = model.score({S.COL_SEQ: i32([[-1, -1, 1, 2, 3]])})
        padded = model.score({S.COL_SEQ: i32([[-1, -1, -1, -1, -1, -1, 1, 2, 3]])[:, -5:]})
        swapped = model.score({S.COL_SEQ: i32([[-1, -1, 2, 1, 3]])})
        h, aligned = model.encode(i32([[-1, -1, 1, 2, 3]]))
    assert torch.allclose(short, padded)
    assert not torch.allclose(short, swapped)
    assert aligned.tolist() == [[1, 2, 3, -1, -1]]
    assert float(h[0, 3:].abs().sum()) == 0.0


@pytest.mark.parametrize("name", ["sequence", "gru"])
def test_sequence_readouts_score_from_the_last_state_the_mean_state_or_both(name: str) -> None:
    from vidrec.config.sections import SEQUENCE_READOUTS
    from vidrec.models.deep.networks.base import READOUTS

    assert SEQUENCE_READOUTS == ("auto", *READOUTS)
    seq = i32([[-1, -1, 1, 2, 3], [-1, -1, -1, -1, 4]])
    scores = {}
    for readout in READOUTS:
        model = build_model(name, {**CONFIGS[name], "readout": readout})
        torch.manual_seed(0)
        model.load_state_dict(make(name).state_dict())
        with torch.no_grad():
            scores[readout] = model.eval().score({S.COL_SEQ: seq})
    with torch.no_grad():
        model = make(name).eval()
        if name == "gru":
            h, aligned = model.encode(seq)
            h = h[:, :3]  # front-aligned: the states after items 1, 2, 3 (row 0) and 4 (row 1)
            states = [h[0, :3], h[1, :1]]
        else:
            h = model.encode(seq)
            states = [h[0, 2:], h[1, 4:]]
        weight = model.item_emb.weight[1:]
    for row, st in enumerate(states):
        assert torch.allclose(scores["last"][row], st[-1] @ weight.T, atol=1e-5)
        assert torch.allclose(scores["mean"][row], st.mean(0) @ weight.T, atol=1e-5)
        assert torch.allclose(scores["mix"][row], 0.5 * (st[-1] + st.mean(0)) @ weight.T, atol=1e-5)
    # a single-item history: every readout is the same state
    assert torch.allclose(scores["last"][1], scores["mean"][1], atol=1e-5)
    with pytest.raises(ValueError, match="readout"):
        build_model(name, {**CONFIGS[name], "readout": "first"}).eval().score({S.COL_SEQ: seq})


def test_next_items_loss_is_the_next_item_softmax_and_counts_every_target_of_the_window() -> None:
    from vidrec.models.deep.networks.base import next_items_loss

    g = torch.Generator().manual_seed(1)
    weight = torch.randn(6, 4, generator=g)
    seq = torch.tensor([[-1, 0, 1, 2], [3, 4, 5, 0]])
    inp = seq[:, :-1]
    h = torch.randn(2, 3, 4, generator=g)
    ce = torch.nn.functional.cross_entropy
    logits = h @ weight.T
    # window 1: each real input predicts the next item; the padded position predicts nothing
    pairs1 = [(0, 1, 1), (0, 2, 2), (1, 0, 4), (1, 1, 5), (1, 2, 0)]
    want1 = torch.stack([ce(logits[b, t], torch.tensor(y)) for b, t, y in pairs1]).mean()
    assert float(next_items_loss(h, inp, seq, weight, 1)) == pytest.approx(float(want1), rel=1e-5)
    # window 2: also the item after next, where the window has one
    pairs2 = pairs1 + [(0, 1, 2), (1, 0, 5), (1, 1, 0)]
    want2 = torch.stack([ce(logits[b, t], torch.tensor(y)) for b, t, y in pairs2]).mean()
    assert float(next_items_loss(h, inp, seq, weight, 2)) == pytest.approx(float(want2), rel=1e-5)
    # in-batch negatives with the log-frequency correction: a softmax over the batch's distinct
    # targets only, each lowered by the log chance that 5 draws hold it at least once
    q = torch.tensor([0.1, 0.2, 0.3, 0.1, 0.2, 0.1])
    log_q = torch.log(q)
    cand = torch.tensor([0, 1, 2, 4, 5])
    sub = logits[..., cand] - torch.log(1 - (1 - q[cand]) ** 5)
    pos = {int(c): k for k, c in enumerate(cand)}
    want3 = torch.stack([ce(sub[b, t], torch.tensor(pos[y])) for b, t, y in pairs1]).mean()
    assert float(next_items_loss(h, inp, seq, weight, 1, log_q)) == pytest.approx(float(want3), rel=1e-5)


def test_fusion_scores_items_without_interactions_from_content_alone() -> None:
    model = make("fusion").eval()
    cold = torch.tensor([17, 18])  # known == 0
    with torch.no_grad():
        vec = model.item_vectors(cold)
        content = model.content(model.item_tokens[cold], {S.COL_VISUAL: model.media_visual_embedding[cold]})
    assert torch.allclose(vec, content)
    model.train()
    model(TRAIN_BATCHES["fusion"]).backward()
    assert float(model.item_emb.weight.grad[15:].abs().sum()) == 0.0  # unknown ids never train


def test_fusion_works_without_media_embeddings() -> None:
    config = {**CONFIGS["fusion"], "visual_dim": 0}
    model = build_model("fusion", config)
    table = {k: v for k, v in side_table().items() if k != S.COL_VISUAL}
    assert S.COL_VISUAL not in model.side_columns
    model.attach_side_table(table)
    assert model.score(SCORE_BATCHES["fusion"]).shape == (3, N_ITEMS)


def test_text_cnn_pools_over_the_text_only_and_gives_no_text_a_zero_vector() -> None:
    from vidrec.models.deep.networks.text import TextCNN

    torch.manual_seed(0)
    cnn = TextCNN(num_buckets=50, dim=6, out_dim=5, kernel_sizes=(1, 2, 3), channels=4).eval()
    text = torch.tensor([[3, 7, 9, 0, 0, 0], [0, 0, 0, 0, 0, 0], [9, 7, 3, 0, 0, 0]])
    longer = torch.cat([text, torch.zeros(3, 4, dtype=torch.long)], dim=1)
    with torch.no_grad():
        out, out_longer = cnn(text), cnn(longer)
    assert out.shape == (3, 5)
    assert torch.allclose(out, out_longer, atol=1e-6)  # padding never changes the pooled features
    assert float(out[1].abs().sum()) == 0.0  # an item without text
    assert not torch.allclose(out[0], out[2])  # word order matters (widths 2 and 3)


def test_fusion_can_use_the_text_cnn_as_its_item_tower() -> None:
    config = {
        **CONFIGS["fusion"],
        "encoder": "cnn",
        "max_text_len": TEXT_LEN,
        "kernel_sizes": [2],
        "channels": 4,
    }
    model = build_model("fusion", config)
    assert S.COL_TEXT in model.side_columns
    model.attach_side_table(side_table())
    assert torch.equal(model.item_text, side_table()[S.COL_TEXT].long())
    model.train()
    model(TRAIN_BATCHES["fusion"]).backward()
    assert model.content.text is not None and model.content.text.emb.weight.grad is not None
    assert model.eval().score(SCORE_BATCHES["fusion"]).shape == (3, N_ITEMS)


def test_text_encoder_gives_items_with_no_interactions_an_embedding() -> None:
    model = make("text").eval()
    with torch.no_grad():
        vecs = model.item_vectors()
    assert vecs.shape == (N_ITEMS, 8)
    assert torch.allclose(vecs.norm(dim=1), torch.ones(N_ITEMS), atol=1e-5)


def test_text_encoder_encodes_each_distinct_item_once_with_the_same_vectors_and_gradients() -> None:
    """Training encodes the batch's distinct items once; the vectors and gradients equal encoding the
    whole catalogue (each item once, no deduplication) and indexing it."""
    config = {
        **CONFIGS["text"],
        "encoder": "cnn",
        "max_text_len": TEXT_LEN,
        "kernel_sizes": [2],
        "channels": 4,
    }
    torch.manual_seed(0)
    model = build_model("text", config)
    model.attach_side_table(side_table())
    ids = torch.tensor([3, 1, 3, 3, 0, 1])
    params = [p for p in model.parameters() if p.requires_grad]
    got = model.item_vectors(ids)
    got_grads = torch.autograd.grad(got.pow(3).sum(), params, allow_unused=True)
    want = model.item_vectors()[ids]
    want_grads = torch.autograd.grad(want.pow(3).sum(), params, allow_unused=True)
    assert torch.allclose(got, want, atol=1e-6)
    for g, w in zip(got_grads, want_grads, strict=True):
        assert (g is None) == (w is None) and (g is None or torch.allclose(g, w, atol=1e-5))


def _in_batch_loss(model: Any, batch: dict[str, torch.Tensor], log_q: torch.Tensor) -> float:
    """The symmetric in-batch softmax loss written out, candidates' logits lowered by ``log_q``."""
    a_ids, b_ids = batch[S.COL_ITEM_A].long(), batch[S.COL_ITEM_B].long()
    logits = model.item_vectors(a_ids) @ model.item_vectors(b_ids).T / model.temperature
    n, eye = len(a_ids), torch.eye(len(a_ids), dtype=torch.bool)
    ab = (logits - log_q[b_ids][None]).masked_fill((b_ids[None] == b_ids[:, None]) & ~eye, float("-inf"))
    ba = (logits.T - log_q[a_ids][None]).masked_fill((a_ids[None] == a_ids[:, None]) & ~eye, float("-inf"))
    target = torch.arange(n)
    ce = torch.nn.functional.cross_entropy
    return float((ce(ab, target, reduction="sum") + ce(ba, target, reduction="sum")) / (2 * n))


def test_text_encoder_corrects_in_batch_logits_by_item_frequency() -> None:
    # Yi et al. 2019: a candidate's logit is lowered by log of its share of the pairs; with the
    # correction off the loss is the plain in-batch softmax
    model = make("text").eval()
    batch = {S.COL_ITEM_A: i32([1, 2, 3, 19]), S.COL_ITEM_B: i32([19, 3, 4, 2])}
    freq = side_table()[S.COL_FREQ].double()
    log_q = torch.log((freq + 1) / (freq + 1).sum()).float()
    assert torch.allclose(model.log_q, log_q)
    plain = build_model("text", {**CONFIGS["text"], "logq_correction": False})
    plain.load_state_dict(model.state_dict())
    assert S.COL_FREQ not in plain.side_columns
    plain.attach_side_table({k: v for k, v in side_table().items() if k != S.COL_FREQ})
    with torch.no_grad():
        corrected, uncorrected = float(model(batch)), float(plain.eval()(batch))
        assert corrected == pytest.approx(_in_batch_loss(model, batch, log_q), rel=1e-5)
        assert uncorrected == pytest.approx(_in_batch_loss(model, batch, torch.zeros(N_ITEMS)), rel=1e-5)
    assert abs(corrected - uncorrected) > 1e-3
    assert "log_q" not in model.state_dict()  # a training-time buffer: saved models are unchanged


@pytest.mark.parametrize("name", sorted(MODEL_CLASSES))
def test_model_config_takes_hyper_parameters_from_the_defaults(name: str) -> None:
    sizes = {"n_users": 7, "n_items": 9, "visual_dim": 0, "audio_dim": 0}
    config = model_config(name, model_params(load_config().deep, name), sizes)
    assert build_model(name, config).config == config


def test_unknown_model_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown deep model 'nope'"):
        build_model("nope", {})


def test_quickcheck_reads_the_whole_split_not_its_slices(tmp_path: Any) -> None:
    import json

    from vidrec import constants as C
    from vidrec.cli.quickcheck import summarise

    def row(algo: str, split: str, metric: str, value: float) -> dict[str, Any]:
        return {
            C.COL_ALGORITHM: algo,
            C.COL_SPLIT: split,
            C.COL_METRIC: metric,
            C.COL_K: 10,
            C.COL_VALUE: value,
        }

    rows = [
        row("popularity", "time_cutoff", "ndcg", 0.05),
        row("text", "time_cutoff", "ndcg", 0.12),
        row("text", "time_cutoff:cold_items", "ndcg", 0.33),  # after the split's row: must not win
        row("popularity", "time_cutoff:cold_users", "ndcg", 0.0),
    ]
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "metrics.json").write_text(
        json.dumps({"rows_per_s_per_process": 900.0, "epochs_done": 7, "seconds": 16.8})
    )
    out = summarise(rows, ["popularity", "text"], tmp_path)
    assert out == {
        "popularity": {"ndcg": 0.05},
        "text": {"ndcg": 0.12, "rows_per_s": 900.0, "epochs": 7.0, "train_seconds": 16.8},
    }
