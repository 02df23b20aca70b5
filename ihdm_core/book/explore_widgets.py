"""ipywidgets front ends of the explorers in :mod:`ihdm_core.book.explore` (chapter 11).

Each function builds the controls of one explorer and returns an :class:`ExplorerUI`: display
it in JupyterLab, or drive it headless by setting ``ui.controls[name].value`` and reading
``ui.view`` (the last view computed) and ``ui.image.value`` (its PNG). A change of any control
recomputes the view through the explorer's caches and redraws it as one PNG.
"""

from __future__ import annotations

import time

from . import explore as E

from . import explore_compare as C

from . import explore_draw as D

__all__ = ["ExplorerUI", "forward", "generation", "colour", "interpolation", "gradients"]


class ExplorerUI:
    """Controls, a status line and the drawn view of one explorer."""

    def __init__(self, controls: dict, compute, draw, figsize, dpi: int = 80):
        import ipywidgets as w

        self.controls, self._compute, self._draw = controls, compute, draw
        self.figsize, self.dpi = figsize, dpi
        self.view: dict | None = None
        self.seconds: float | None = None  # the last update, compute and draw
        self.image = w.Image(format="png")
        self.status = w.HTML()
        self.widget = w.VBox(
            [
                w.HBox(list(controls.values()), layout=w.Layout(flex_flow="row wrap")),
                self.status,
                self.image,
            ]
        )
        for c in controls.values():
            c.observe(lambda _change: self.update(), names="value")
        self.update()

    def values(self) -> dict:
        return {name: c.value for name, c in self.controls.items()}

    def update(self) -> None:
        t0 = time.perf_counter()
        try:
            self.view = self._compute(self.values())
        except (ValueError, KeyError) as err:  # a bad entry: say so and keep the last picture
            self.status.value = f"<span style='color:#b00'>{err}</span>"
            return
        self.image.value = D.render_png(self._draw, self.view, self.figsize, self.dpi)
        self.seconds = time.perf_counter() - t0
        self.status.value = f"<small>updated in {self.seconds:.2f} s</small>"

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


def forward(explorer: E.ForwardExplorer, image: str | None = None) -> ExplorerUI:
    """An image menu, an upload button (the file is added to the menu) and a slider over k."""
    import ipywidgets as w

    names = list(explorer.images)
    pick = w.Dropdown(options=names, value=image or names[0], description="image")
    upload = w.FileUpload(accept="image/*", multiple=False, description="your image")
    k = w.IntSlider(
        value=explorer.K // 2, min=0, max=explorer.K, description="level k", continuous_update=False
    )

    def on_upload(change):
        for f in change["new"]:
            name = explorer.add_file(f"upload: {f['name']}", bytes(f["content"]))
            pick.options = list(explorer.images)
            pick.value = name

    upload.observe(on_upload, names="value")
    return ExplorerUI(
        {"image": pick, "upload": upload, "k": k},
        lambda v: explorer.view(v["image"], v["k"]),
        D.draw_forward,
        (7, 2.6),
    )


def generation(
    explorer: E.GenerationExplorer, roles: dict | None = None, steps_options=(10, 20, 50, 100, 250)
) -> ExplorerUI:
    """Model, seed, delta (IHDM), T and sampler (diffusions), and a slider over the steps."""
    import ipywidgets as w

    roles = roles or E.MODEL_ROLES
    model = w.Dropdown(
        options=list(roles.items()), value=next(iter(roles.values())), description="model"
    )
    seed = w.BoundedIntText(value=0, min=0, max=2**31 - 1, description="seed")
    first = explorer.models.run(model.value).process
    delta = w.FloatSlider(value=first.delta if first.name == "ihdm" else 0.0125, min=0.0, max=0.05,
                          step=0.0025, readout_format=".4f", description="delta (IHDM)",
                          continuous_update=False)
    steps = w.Dropdown(
        options=list(steps_options),
        value=50 if 50 in steps_options else steps_options[0],
        description="T (diffusions)",
    )
    sampler = w.Dropdown(options=["ancestral", "ddim"], value="ancestral", description="sampler")
    step = w.IntSlider(value=0, min=0, max=1000, description="step", continuous_update=False)

    def compute(v):
        run = explorer.models.run(v["model"])
        is_ihdm = run.process.name == "ihdm"
        delta.disabled, steps.disabled, sampler.disabled = (not is_ihdm, is_ihdm, is_ihdm)
        kw = ({"delta": v["delta"]} if is_ihdm else
              {"steps": v["steps"] if run.cfg.process.time == "continuous" else None,
               "sampler": v["sampler"]})
        tr = explorer.trajectory(v["model"], v["seed"], **kw)
        last = len(tr["levels"]) - 1
        if step.max != last:  # a new trajectory length: move the slider, not the view
            with step.hold_trait_notifications():
                step.max = last
        return explorer.view(v["model"], v["seed"], min(v["step"], last), **kw)

    controls = {"model": model, "seed": seed, "delta": delta, "steps": steps, "sampler": sampler,
                "step": step}
    return ExplorerUI(controls, compute, D.draw_generation, (7, 4))


def colour(explorer: E.ColourExplorer, colour_value: str = "#e07020") -> ExplorerUI:
    """Noise seed, training image of the prior, and whether its prior keeps its own colour or
    takes the picked one."""
    import ipywidgets as w

    n = len(explorer.models.images(explorer.role))
    seed = w.BoundedIntText(value=0, min=0, max=2**31 - 1, description="noise seed")
    source = w.ToggleButtons(
        options=["colour", "image"],
        value="colour",
        description="prior",
        tooltips=["the image's prior in the picked colour", "the image's own prior"],
    )
    pick = w.ColorPicker(value=colour_value, description="prior colour", concise=False)
    image = w.BoundedIntText(value=1, min=0, max=n - 1, description="prior image")

    def compute(v):
        if v["source"] == "colour":
            return explorer.view(v["seed"], colour=v["colour"], image=v["image"])
        return explorer.view(v["seed"], image=v["image"])

    return ExplorerUI(
        {"seed": seed, "source": source, "colour": pick, "image": image},
        compute,
        D.draw_colour,
        (7, 2.6),
    )


def interpolation(explorer: C.InterpolationExplorer) -> ExplorerUI:
    """Two seeds and a slider along the path."""
    import ipywidgets as w

    a = w.BoundedIntText(value=0, min=0, max=2**31 - 1, description="seed A")
    b = w.BoundedIntText(value=1, min=0, max=2**31 - 1, description="seed B")
    frame = w.IntSlider(
        value=explorer.n_frames // 2,
        min=0,
        max=explorer.n_frames - 1,
        description="frame",
        continuous_update=False,
    )
    return ExplorerUI(
        {"seed_a": a, "seed_b": b, "frame": frame},
        lambda v: explorer.view(v["seed_a"], v["seed_b"], v["frame"]),
        D.draw_interpolation,
        (7, 4),
    )


def gradients(explorer: C.GradientExplorer) -> ExplorerUI:
    """Seed, pixel (row, column) and level."""
    import ipywidgets as w

    H, W = explorer.models.run("ihdm").process.image_size
    seed = w.BoundedIntText(value=0, min=0, max=2**31 - 1, description="seed")
    row = w.IntSlider(value=H // 2, min=0, max=H - 1, description="row", continuous_update=False)
    col = w.IntSlider(value=W // 2, min=0, max=W - 1, description="column", continuous_update=False)
    k = w.IntSlider(
        value=max(1, explorer.K // 2),
        min=1,
        max=explorer.K,
        description="level k",
        continuous_update=False,
    )
    return ExplorerUI(
        {"seed": seed, "row": row, "column": col, "k": k},
        lambda v: explorer.view(v["seed"], (v["row"], v["column"]), v["k"]),
        D.draw_gradients,
        (5, 5),
    )
