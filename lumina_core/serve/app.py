"""The demo page (gradio) over a :class:`~lumina_core.serve.session.ServeSession`.

    lumina serve recipes/image/shapes_tiny.yaml --ckpt last          # http://127.0.0.1:7860

Left: the task, the page's limits, the prompt (a caption, or a class id for class-conditioned tasks), steps,
solver, guidance scale, seed, number of samples and an optional sample shape (e.g. a larger image, a longer
clip or more frames, where the plugin's tokens allow it); Generate and Cancel. Right: a status line (the
request's place in the queue, then its progress), then whatever the task plugin's ``preview_items`` describe
- images and animated GIFs in a gallery, audio players, 3-D viewers that turn a point cloud around, video
players.

Requests go through the session's queue (:meth:`ServeSession.submit`): the Generate handler waits for its
ticket in short slices, telling the page how it goes; gradio stops asking when the client goes away, and
the ticket then cancels itself (:mod:`lumina_core.serve.jobs`). Cancel and the health endpoint
(``POST /gradio_api/run/health``) bypass gradio's queue, so they answer while a request runs.

Values are checked by the session, not by gradio's components: a slider or number sent past its bounds by
a client is one line on the page and in the log (:func:`_unchecked`), never a traceback.

The page binds to 127.0.0.1 unless told otherwise, sends no analytics, and loads nothing from outside the
machine (gradio's front end is served from the installed package). gradio is imported here only, when the
page is built, so ``lumina --help`` stays fast.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lumina_core.serve.session import PageResult, ServeSession

#: the solvers offered by the page (registered names; dopri5 is adaptive: steps do not apply)
PAGE_SOLVERS = ("euler", "midpoint", "heun", "heun_edm", "rk4", "ab2", "dopri5")
KINDS = ("image", "audio", "model3d", "video")
#: seconds between two looks at a waiting or running request (each look tells the queue the client is there)
POLL_S = 0.5


def page_outputs(result: PageResult, slots: int = 4) -> dict[str, Any]:
    """A request's result as the page's output values: ``status`` (markdown), ``gallery`` (image paths with
    labels) and ``audio`` / ``model3d`` / ``video`` (lists of ``slots`` paths or None, one per slot)."""
    out: dict[str, Any] = {"status": ("" if result.ok else "**Error:** ") + result.message}
    out["gallery"] = [(str(it.path), it.label) for it in result.of_kind("image")]
    for kind in ("audio", "model3d", "video"):
        items = result.of_kind(kind)[:slots]
        out[kind] = [str(it.path) for it in items] + [None] * (slots - len(items))
    return out


def _unchecked(component: Any) -> Any:
    """Let the session check ``component``'s value: gradio's own bounds check raises an error that prints a
    traceback on the server's console for every value a client sends past a slider's ends; the session says
    the same in one line. Sliders and numbers keep their front-end bounds."""
    component.preprocess = lambda payload: payload
    return component


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
        f"Limits of this page (set by whoever started it): {session.limits_text(task)}.",
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
    lim = session.limits
    n_slots = lim.max_samples
    with gr.Blocks(title=f"Lumina - {session.cfg.run.name}", analytics_enabled=False) as page:
        gr.Markdown(f"## Lumina: `{session.cfg.run.name}`\nRun folder `{session.cfg.run.output_dir}`, "
                    f"checkpoint `{session.checkpoint}`.")  # fmt: skip
        with gr.Row():
            with gr.Column(scale=2):
                task = _unchecked(gr.Dropdown(tasks, value=tasks[0], label="task", elem_id="lumina-task"))
                about = gr.Markdown(_task_markdown(session, tasks[0]), elem_id="lumina-task-info")
                examples = gr.Dropdown(
                    session.examples(tasks[0]), value=None, label="held-out examples (fill the prompt)",
                    elem_id="lumina-examples",
                )  # fmt: skip
                prompt = gr.Textbox(
                    label="prompt (a caption, or a class id)", lines=1, elem_id="lumina-prompt"
                )
                with gr.Row():
                    steps = _unchecked(gr.Slider(1, lim.max_steps, value=min(int(first.defaults["steps"]), lim.max_steps),
                                                 step=1, label="steps"))  # fmt: skip
                    solver = gr.Dropdown(
                        list(PAGE_SOLVERS), value=str(first.defaults["solver"]), label="solver",
                        allow_custom_value=True,
                    )  # fmt: skip
                with gr.Row():
                    cfg_scale = _unchecked(gr.Slider(0.0, 10.0, value=float(first.defaults["cfg_scale"]), step=0.5,
                                                     label="guidance scale"))  # fmt: skip
                    seed = _unchecked(gr.Number(value=int(first.defaults["seed"]), precision=0, label="seed"))
                with gr.Row():
                    num = _unchecked(gr.Slider(1, n_slots, value=1, step=1, label="samples"))
                    shape = gr.Textbox(
                        label="shape (empty: the default shown above; e.g. larger sides, more frames)",
                        elem_id="lumina-shape",
                    )
                with gr.Row():
                    go = gr.Button("Generate", variant="primary", elem_id="lumina-generate")
                    stop = gr.Button("Cancel", variant="stop", elem_id="lumina-cancel")
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
                    for i in range(n_slots):
                        slots["audio"].append(
                            gr.Audio(label=f"audio {i + 1}", type="filepath", visible=False, elem_id=f"lumina-audio-{i}")
                        )  # fmt: skip
                with gr.Row():
                    for i in range(n_slots):
                        slots["model3d"].append(
                            gr.Model3D(label=f"3-D {i + 1}", display_mode="point_cloud", visible=False,
                                       elem_id=f"lumina-model3d-{i}")
                        )  # fmt: skip
                with gr.Row():
                    for i in range(n_slots):
                        slots["video"].append(
                            gr.Video(label=f"video {i + 1}", visible=False, elem_id=f"lumina-video-{i}")
                        )

        def on_task(name: str):
            if (
                name not in session.tasks
            ):  # only a client past the page can send this; the status line says so
                return (f"**Error:** unknown task {name!r}; this recipe's tasks: {', '.join(session.tasks)}",
                        *[gr.update()] * 5)  # fmt: skip
            info = session.tasks[name]
            d = info.defaults
            return (
                _task_markdown(session, name),
                gr.update(choices=session.examples(name), value=None),
                gr.update(value=min(int(d["steps"]), lim.max_steps)),
                gr.update(value=str(d["solver"])),
                gr.update(value=float(d["cfg_scale"])),
                gr.update(value=int(d["seed"])),
            )

        n_outputs = 2 + 3 * n_slots

        def on_generate(
            name, text, n_steps, solver_name, scale, seed_value, n, shape_text, request: gr.Request
        ):
            ticket = session.submit(
                name, text, steps=n_steps, solver=solver_name, cfg_scale=scale, seed=seed_value, shape=shape_text,
                num=n, owner=getattr(request, "session_hash", None),
            )  # fmt: skip
            try:
                while not ticket.wait(POLL_S):  # gradio stops iterating when the client goes: no more polls
                    ticket.poll()
                    yield [session.progress(ticket)] + [gr.update()] * (n_outputs - 1)
            finally:
                if not ticket.done:  # the iterator was closed (gradio's /cancel, or shutdown)
                    ticket.cancel("the page closed the request")
            vals = page_outputs(session.result(ticket), n_slots)
            updates = [vals["status"], vals["gallery"]]
            for kind in ("audio", "model3d", "video"):
                updates += [gr.update(value=v, visible=v is not None) for v in vals[kind]]
            yield updates

        def on_cancel(request: gr.Request):
            # the status line is written by the request's own stream only (its next poll says "cancelling"):
            # a reply from here could reach the page after the request's final line and overwrite it
            session.cancel(getattr(request, "session_hash", None))
            return gr.update()

        # gradio passes the request to a parameter annotated gr.Request; this module's annotations are strings
        # (``from __future__ import annotations``) naming a module imported in this function, so say it here
        on_generate.__annotations__["request"] = on_cancel.__annotations__["request"] = gr.Request
        task.change(on_task, [task], [about, examples, steps, solver, cfg_scale, seed])
        examples.change(lambda e: gr.update() if e is None else e, [examples], [prompt])
        outputs = [status, gallery, *slots["audio"], *slots["model3d"], *slots["video"]]
        inputs = [task, prompt, steps, solver, cfg_scale, seed, num, shape]
        go.click(on_generate, inputs, outputs, api_name="generate")
        prompt.submit(on_generate, inputs, outputs, api_name=False)
        stop.click(on_cancel, None, [status], queue=False, api_name="cancel")
        gr.api(session.health, api_name="health", queue=False)
    return page


def launch(
    session: ServeSession,
    host: str = "127.0.0.1",
    port: int | None = None,
    block: bool = True,
    token: str | None = None,
) -> Any:
    """Build and start the page on ``host:port`` (port None: gradio's first free one from 7860). Blocks
    until interrupted unless ``block`` is False; returns the Blocks (``.close()`` stops the server).
    ``token``: required on gradio's login page (any user name) before anything else is served.

    gradio's queue lets every request the session may hold (one running, ``max_waiting`` waiting) have a
    handler, so each can say where it stands; beyond that gradio answers "queue full"."""
    page = build_page(session)
    handlers = session.limits.max_waiting + 1
    page.queue(default_concurrency_limit=handlers, max_size=2 * handlers)
    try:
        _start(page, session, host, port, block, token)
    except OSError as exc:  # the port is taken, or the address is not this machine's
        raise ValueError(f"cannot serve on {host}:{port}: {exc}; choose another --port or --host") from exc
    return page


def _start(
    page: Any, session: ServeSession, host: str, port: int | None, block: bool, token: str | None
) -> None:
    from lumina_core.serve.access import check_token

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
        quiet=True,  # the CLI says what is exposed; gradio would suggest share=True, which we never offer
        footer_links=[],
        auth=None if token is None else check_token(token),
        auth_message=None
        if token is None
        else "Type the access token of this page as the password (any user name).",
    )
