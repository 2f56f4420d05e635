"""The demo page (gradio) over a :class:`~lumina_core.serve.session.ServeSession`.

    lumina serve recipes/image/shapes_tiny.yaml --ckpt last          # http://127.0.0.1:7860

Left: the task, the prompt (a caption, or a class id for class-conditioned tasks), steps, solver, guidance
scale, seed, number of samples and an optional sample shape (e.g. a larger image, a longer clip or more
frames, where the plugin's tokens allow it). Right: a status line, then whatever the task plugin's
``preview_items`` describe - images and animated GIFs in a gallery, audio players, 3-D viewers that turn a
point cloud around, video players.

The page binds to 127.0.0.1 unless told otherwise, sends no analytics, and loads nothing from outside the
machine (gradio's front end is served from the installed package). gradio is imported here only, when the
page is built, so ``lumina --help`` stays fast.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lumina_core.serve.session import MAX_SAMPLES, PageResult, ServeSession

#: the solvers offered by the page (registered names; dopri5 is adaptive: steps do not apply)
PAGE_SOLVERS = ("euler", "midpoint", "heun", "heun_edm", "rk4", "ab2", "dopri5")
KINDS = ("image", "audio", "model3d", "video")


def page_outputs(result: PageResult) -> dict[str, Any]:
    """A request's result as the page's output values: ``status`` (markdown), ``gallery`` (image paths with
    labels) and ``audio`` / ``model3d`` / ``video`` (lists of MAX_SAMPLES paths or None, one per slot)."""
    out: dict[str, Any] = {"status": ("" if result.ok else "**Error:** ") + result.message}
    out["gallery"] = [(str(it.path), it.label) for it in result.of_kind("image")]
    for kind in ("audio", "model3d", "video"):
        items = result.of_kind(kind)[:MAX_SAMPLES]
        out[kind] = [str(it.path) for it in items] + [None] * (MAX_SAMPLES - len(items))
    return out


def loss_curves(session: ServeSession) -> Path | None:
    """The run's loss curves (``<run_dir>/curves/loss.png``), if training wrote them."""
    path = Path(session.cfg.run.output_dir) / "curves" / "loss.png"
    return path if path.is_file() else None


def _task_markdown(session: ServeSession, task: str) -> str:
    info = session.tasks[task]
    prompt = {
        "text": "type a caption",
        "class": f"type a class id (0..{info.num_classes - 1})" if info.num_classes else "type a class id",
        "none": "unconditional: leave the prompt empty",
    }.get(info.condition, f"condition kind {info.condition!r}")
    shape = session.default_shape(task)
    d = info.defaults
    lines = [
        f"**{task}** - modality `{info.modality}`; {prompt}.",
        f"Recipe defaults: {d['solver']}, {d['steps']} steps, guidance {d['cfg_scale']:g}, seed {d['seed']}"
        + (f"; default shape `{', '.join(map(str, shape))}`." if shape else "."),
    ]
    if session.load_error:
        lines.append(f"**Not loaded:** {session.load_error}")
    return "\n\n".join(lines)


def build_page(session: ServeSession) -> Any:
    """The gradio Blocks of the page (not launched)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    tasks = list(session.tasks)
    first = session.tasks[tasks[0]]
    with gr.Blocks(title=f"Lumina - {session.cfg.run.name}", analytics_enabled=False) as page:
        gr.Markdown(f"## Lumina: `{session.cfg.run.name}`\nRun folder `{session.cfg.run.output_dir}`, "
                    f"checkpoint `{session.checkpoint}`.")  # fmt: skip
        with gr.Row():
            with gr.Column(scale=2):
                task = gr.Dropdown(tasks, value=tasks[0], label="task", elem_id="lumina-task")
                about = gr.Markdown(_task_markdown(session, tasks[0]), elem_id="lumina-task-info")
                examples = gr.Dropdown(
                    session.examples(tasks[0]), value=None, label="held-out examples (fill the prompt)",
                    elem_id="lumina-examples",
                )  # fmt: skip
                prompt = gr.Textbox(
                    label="prompt (a caption, or a class id)", lines=1, elem_id="lumina-prompt"
                )
                with gr.Row():
                    steps = gr.Slider(1, 100, value=int(first.defaults["steps"]), step=1, label="steps")
                    solver = gr.Dropdown(
                        list(PAGE_SOLVERS), value=str(first.defaults["solver"]), label="solver",
                        allow_custom_value=True,
                    )  # fmt: skip
                with gr.Row():
                    cfg_scale = gr.Slider(1.0, 10.0, value=float(first.defaults["cfg_scale"]), step=0.5,
                                          label="guidance scale")  # fmt: skip
                    seed = gr.Number(value=int(first.defaults["seed"]), precision=0, label="seed")
                with gr.Row():
                    num = gr.Slider(1, MAX_SAMPLES, value=1, step=1, label="samples")
                    shape = gr.Textbox(
                        label="shape (empty: the default shown above; e.g. larger sides, more frames)",
                        elem_id="lumina-shape",
                    )
                go = gr.Button("Generate", variant="primary", elem_id="lumina-generate")
                curves = loss_curves(session)
                if curves is not None:  # written at the end of training (lumina_core.training.curves)
                    with gr.Accordion("training loss", open=False, elem_id="lumina-curves"):
                        gr.Image(str(curves), show_label=False, interactive=False)
            with gr.Column(scale=3):
                status = gr.Markdown("", elem_id="lumina-status")
                gallery = gr.Gallery(
                    label="images", columns=4, height=420, object_fit="contain", elem_id="lumina-gallery"
                )
                slots: dict[str, list[Any]] = {"audio": [], "model3d": [], "video": []}
                with gr.Row():
                    for i in range(MAX_SAMPLES):
                        slots["audio"].append(
                            gr.Audio(label=f"audio {i + 1}", type="filepath", visible=False, elem_id=f"lumina-audio-{i}")
                        )  # fmt: skip
                with gr.Row():
                    for i in range(MAX_SAMPLES):
                        slots["model3d"].append(
                            gr.Model3D(label=f"3-D {i + 1}", display_mode="point_cloud", visible=False,
                                       elem_id=f"lumina-model3d-{i}")
                        )  # fmt: skip
                with gr.Row():
                    for i in range(MAX_SAMPLES):
                        slots["video"].append(
                            gr.Video(label=f"video {i + 1}", visible=False, elem_id=f"lumina-video-{i}")
                        )

        def on_task(name: str):
            info = session.tasks[name]
            d = info.defaults
            return (
                _task_markdown(session, name),
                gr.update(choices=session.examples(name), value=None),
                gr.update(value=int(d["steps"])),
                gr.update(value=str(d["solver"])),
                gr.update(value=float(d["cfg_scale"])),
                gr.update(value=int(d["seed"])),
            )

        def on_generate(name, text, n_steps, solver_name, scale, seed_value, n, shape_text):
            result = session.generate(
                name, text, steps=n_steps, solver=solver_name, cfg_scale=scale,
                seed=None if seed_value is None else int(seed_value), shape=shape_text, num=int(n),
            )  # fmt: skip
            vals = page_outputs(result)
            updates = [vals["status"], vals["gallery"]]
            for kind in ("audio", "model3d", "video"):
                updates += [gr.update(value=v, visible=v is not None) for v in vals[kind]]
            return updates

        task.change(on_task, [task], [about, examples, steps, solver, cfg_scale, seed])
        examples.change(lambda e: gr.update() if e is None else e, [examples], [prompt])
        outputs = [status, gallery, *slots["audio"], *slots["model3d"], *slots["video"]]
        inputs = [task, prompt, steps, solver, cfg_scale, seed, num, shape]
        go.click(on_generate, inputs, outputs, api_name="generate")
        prompt.submit(on_generate, inputs, outputs)
    return page


def launch(
    session: ServeSession, host: str = "127.0.0.1", port: int | None = None, block: bool = True
) -> Any:
    """Build and start the page on ``host:port`` (port None: gradio's first free one from 7860). Blocks
    until interrupted unless ``block`` is False; returns the Blocks (``.close()`` stops the server)."""
    page = build_page(session)
    page.queue(default_concurrency_limit=1)
    try:
        _start(page, session, host, port, block)
    except OSError as exc:  # the port is taken, or the address is not this machine's
        raise ValueError(f"cannot serve on {host}:{port}: {exc}; choose another --port or --host") from exc
    return page


def _start(page: Any, session: ServeSession, host: str, port: int | None, block: bool) -> None:
    allowed = [Path(session.out_dir).resolve()]  # the only files the page may serve: requests' and curves
    curves = loss_curves(session)
    if curves is not None:
        allowed.append(curves.parent.resolve())
    page.launch(
        server_name=host,
        server_port=port,
        share=False,
        inbrowser=False,
        prevent_thread_lock=not block,
        allowed_paths=[str(p) for p in allowed],
        ssr_mode=False,
        pwa=False,
        mcp_server=False,
        quiet=False,
        footer_links=[],
    )
