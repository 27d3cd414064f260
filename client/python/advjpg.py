"""advjpg: a small Python client for advjpgd.

Standard library and ``requests``; ``pandas`` only if you want ``rows()`` as a
DataFrame. One file: copy it next to your notebook, or put ``client/python``
on ``sys.path``.

    from advjpg import Client, ServerError

    c = Client()                      # $ADVJPG_SERVER / $ADVJPG_TOKEN, else 127.0.0.1:8080
    c.health()                        # {"status": "ok"}
    c.models()["name"]                # the loaded model
    r = c.classify("cat.jpg")         # {"label": 281, "name": ..., "prob": ..., "top": [{"index", "name", "prob"}]}
    a = c.attack("cat.jpg", eps=(1, 5, 10), quality=75, seed=1, images=True)
    b = c.attack("cat.jpg", eps=5, attack="pgd", steps=10, adaptive="bpda")  # b["threat_model"]
    pngs = decode_images(a)           # {"x": b"\\x89PNG...", "Adv1(x)": ..., ...}
    job = c.evaluate(images=["a.jpg", "b.png"], labels={"a.jpg": 3, "b.png": 7})
    c.wait(job, progress=print)       # polls GET /jobs/{id} until it has ended
    table = c.result(job)["table"]    # Table 1
    df = c.rows(job)                  # one row per image (a DataFrame with pandas)
    svg = c.figure(job, 4)            # Figure 4 as the server draws it (SVG text)

Every method returns the server's JSON as Python values. An error answer, or
no answer at all, raises ServerError carrying the server's message
(``.message``), the HTTP status (``.status``, 0 when there was no answer) and
``.retry_after`` when the server sent one; a job that ends failed or canceled
makes ``wait()`` raise JobError (``.job`` is its last state).
"""

import base64
import csv
import io
import os
import time
from pathlib import Path

import requests

__all__ = ["Client", "ServerError", "JobError", "decode_images", "DEFAULT_SERVER"]

DEFAULT_SERVER = "http://127.0.0.1:8080"
__version__ = "0.1.0"


class ServerError(Exception):
    """An error answer from advjpgd, or no answer (status 0).

    Attributes: status (HTTP status, 0 = no answer), message (the server's
    {"error": ...} text, else the start of the body, else the transport's
    error), method and path of the request, retry_after (seconds or None).
    """

    def __init__(self, message, status=0, method=None, path=None, retry_after=None):
        self.message = message
        self.status = status
        self.method = method
        self.path = path
        self.retry_after = retry_after
        where = f"{method} {path}: " if method else ""
        text = f"server answered {status}: {message}" if status else message
        super().__init__(where + text)


class JobError(Exception):
    """A job that ended failed or canceled; .job is its last state."""

    def __init__(self, job):
        self.job = job
        why = job.get("error")
        super().__init__(f"job {job.get('id')} {job.get('status')}" + (f": {why}" if why else ""))


def _image_type(head):
    """The Content-Type for an image's first bytes, as the advjpg client decides it."""
    if head[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if head[:1] == b"P" and head[1:2] in (b"5", b"6") and head[2:3] in (b" ", b"\t", b"\n", b"\r", b"#"):
        return "image/x-portable-pixmap"
    return None


def _load_image(image):
    """(name, bytes, content type) of a path, or of (name, bytes) / bytes in memory."""
    if isinstance(image, (bytes, bytearray)):
        name, data = "image", bytes(image)
    elif isinstance(image, tuple):
        name, data = image[0], bytes(image[1])
    else:
        p = Path(image)
        name, data = p.name, p.read_bytes()
    ctype = _image_type(data[:8])
    if ctype is None:
        raise ValueError(f"{name}: not a JPEG, PNG or PPM image")
    return name, data, ctype


def _images_of_folder(folder):
    """The images of a folder (not hidden, not in subfolders), sorted by name."""
    out = []
    for p in sorted(Path(folder).iterdir()):
        if p.name.startswith(".") or not p.is_file():
            continue
        with open(p, "rb") as f:
            if _image_type(f.read(8)):
                out.append(p)
    if not out:
        raise ValueError(f"{folder}: no JPEG, PNG or PPM images in the folder")
    return out


def _eps_text(eps):
    if isinstance(eps, int):
        return str(eps)
    return ",".join(str(int(e)) for e in eps)


def _attack_fields(attack, steps, step_size, adaptive, eot_qualities):
    """The attack menu's given keywords as the server's names (None: the server's default)."""
    given = {"attack": attack, "steps": steps, "step_size": step_size, "adaptive": adaptive,
             "eot_qualities": eot_qualities}
    out = {k: v for k, v in given.items() if v is not None}
    if "eot_qualities" in out and not isinstance(out["eot_qualities"], int):
        out["eot_qualities"] = [int(q) for q in out["eot_qualities"]]
    return out


def _attack_query(fields):
    """The attack fields as query parameters (a list as "50,75")."""
    return {k: _eps_text(v) if k == "eot_qualities" else v for k, v in fields.items()}


def decode_images(answer):
    """The base64 PNGs of an /attack answer made with images=True, as {transform: PNG bytes}."""
    return {k: base64.b64decode(v) for k, v in (answer.get("images") or {}).items()}


class Client:
    """A connection to one advjpgd.

    url: the server (default $ADVJPG_SERVER, else http://127.0.0.1:8080; a
    bare host:port gets http://). token: the bearer token (default
    $ADVJPG_TOKEN; "" = none). timeout: seconds per request (None = none).
    """

    def __init__(self, url=None, token=None, timeout=300.0, session=None):
        url = url or os.environ.get("ADVJPG_SERVER") or DEFAULT_SERVER
        if "://" not in url:
            url = "http://" + url
        self.url = url.rstrip("/")
        if token is None:
            token = os.environ.get("ADVJPG_TOKEN") or None
        self.timeout = timeout
        self.session = session or requests.Session()
        if token:
            self.session.headers["Authorization"] = "Bearer " + token
        self.session.headers.setdefault("User-Agent", f"advjpg.py/{__version__}")

    def __repr__(self):
        return f"Client({self.url!r})"

    def close(self):
        """Closes the kept-alive connections (also on leaving a with block)."""
        self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- HTTP ---------------------------------------------------------------

    def request(self, method, path, params=None, **kw):
        """One request; the requests.Response of a 2xx answer, else ServerError."""
        kw.setdefault("timeout", self.timeout)
        try:
            r = self.session.request(method, self.url + path, params=params, **kw)
        except requests.Timeout:
            raise ServerError(f"no answer from {self.url} within {self.timeout} s", 0,
                              method, path) from None
        except requests.ConnectionError as e:
            raise ServerError(f"cannot connect to {self.url}: {e.__class__.__name__}", 0,
                              method, path) from None
        if not 200 <= r.status_code < 300:
            msg = None
            try:
                body = r.json()
                msg = body.get("error") if isinstance(body, dict) else None
            except ValueError:
                pass
            if not msg:
                text = r.text.strip()
                msg = text.splitlines()[0][:240] if text and "html" not in r.headers.get(
                    "Content-Type", "") else r.reason
            ra = r.headers.get("Retry-After")
            raise ServerError(msg, r.status_code, method, path,
                              int(ra) if ra and ra.isdigit() else None)
        return r

    def _json(self, method, path, **kw):
        r = self.request(method, path, **kw)
        try:
            return r.json()
        except ValueError:
            raise ServerError(f"the answer is not JSON (Content-Type "
                              f"{r.headers.get('Content-Type')!r})", r.status_code, method,
                              path) from None

    @staticmethod
    def _job_path(job_id, suffix=""):
        job_id = str(job_id.get("id") if isinstance(job_id, dict) else job_id)
        return "/jobs/" + requests.utils.quote(job_id, safe="") + suffix

    # ---- service ------------------------------------------------------------

    def health(self):
        """GET /health: {"status": "ok"} when the model is loaded (503 raises while it loads)."""
        return self._json("GET", "/health")

    def models(self):
        """GET /models: the loaded model (name, input_size, scale_size, classes, ...)."""
        return self._json("GET", "/models")

    def metrics(self):
        """GET /metrics: the Prometheus text."""
        return self.request("GET", "/metrics", headers={"Accept": "text/plain"}).text

    # ---- images -------------------------------------------------------------

    def classify(self, image, top_k=None, resize=None):
        """POST /classify of one image (a path, bytes, or (name, bytes)).

        The answer: {"model", "width", "height", "input_size", "label" (the class
        index), "name" (its class name, with labels), "prob",
        "top": [{"index", "name", "prob"}, ...]}.
        """
        _, data, ctype = _load_image(image)
        params = {k: v for k, v in (("top_k", top_k), ("resize", resize)) if v is not None}
        return self._json("POST", "/classify", params=params, data=data,
                          headers={"Content-Type": ctype})

    def attack(self, image, eps=(1, 5, 10), quality=75, seed=1, top_k=None, images=False,
               resize=None, attack=None, steps=None, step_size=None, adaptive=None,
               eot_qualities=None):
        """POST /attack: the paper's per-image pipeline on one image.

        results: x, JPG(x) and per eps Adv<eps>(x), JPG(Adv<eps>(x)),
        JPGnoise(Adv<eps>(x)), each with top_label_prob = p(l_x | f(x)),
        the attack's fields and, for the adversarial ones, the
        perturbation's linf, l2 and psnr; threat_model says in words
        which threat model made them. quality may be a list (50, 75, 90):
        the quality grid, names carrying the quality (JPG75(Adv5(x))).
        images=True adds every transform's image as base64 PNG under
        "images" (decode_images() turns them into bytes).

        The attack menu (None: the server's default): attack "fgsm" (the
        paper), "bim", "pgd" (seeded random start) or "ll"; steps (10) and
        step_size (1 level) for the iterative ones; adaptive "none" (attack
        f), "bpda" (attack f(JPG_quality(.))) or "eot" (bpda averaged over
        eot_qualities, default 50, 60, 70, 75, 80, 90).
        """
        _, data, ctype = _load_image(image)
        params = {"eps": _eps_text(eps), "quality": _eps_text(quality), "seed": seed,
                  "images": 1 if images else 0}
        params.update(_attack_query(_attack_fields(attack, steps, step_size, adaptive,
                                                   eot_qualities)))
        if top_k is not None:
            params["top_k"] = top_k
        if resize is not None:
            params["resize"] = resize
        return self._json("POST", "/attack", params=params, data=data,
                          headers={"Content-Type": ctype})

    # ---- jobs ---------------------------------------------------------------

    def evaluate(self, dataset=None, images=None, labels=None, ground_truth=None,
                 eps=(1, 5, 10), quality=75, seed=1, offset=None, limit=None, shard=None,
                 attack=None, steps=None, step_size=None, adaptive=None, eot_qualities=None):
        """POST /evaluate; returns the new job's id.

        attack, steps, step_size, adaptive and eot_qualities are attack()'s
        (the body's "attack" object, or an upload's fields).

        Either dataset, a folder under the server's --data-root (with an
        optional ground_truth file there; offset, limit and shard=(index,
        count) slice its sorted file list), or images: a local folder, or a
        list of paths or (name, bytes) pairs, uploaded as multipart 'image'
        fields. labels goes with images: a dict {file name: class index}, a
        path to a file of filename<TAB>class lines, or that text itself;
        with a folder and no labels, the folder's labels.txt if it has one.
        """
        if (dataset is None) == (images is None):
            raise ValueError("give dataset (a folder on the server) or images (local ones)")
        menu = _attack_fields(attack, steps, step_size, adaptive, eot_qualities)
        if dataset is not None:
            if labels is not None:
                raise ValueError("labels goes with images; for a dataset give ground_truth")
            body = {"dataset": str(dataset), "eps": [int(e) for e in
                                                     ([eps] if isinstance(eps, int) else eps)],
                    "quality": quality if isinstance(quality, int) else [int(q) for q in quality],
                    "seed": seed}
            if ground_truth is not None:
                body["ground_truth"] = str(ground_truth)
            if offset is not None:
                body["offset"] = offset
            if limit is not None:
                body["limit"] = limit
            if shard is not None:
                body["shard"] = {"index": shard[0], "count": shard[1]}
            if menu:
                body["attack"] = menu
            ans = self._json("POST", "/evaluate", json=body)
            return ans["id"]
        if ground_truth is not None or offset is not None or limit is not None or shard:
            raise ValueError("ground_truth, offset, limit and shard go with a dataset; "
                             "pass the images you want and labels")
        if isinstance(images, (str, Path)) and Path(images).is_dir():
            folder = Path(images)
            images = _images_of_folder(folder)
            if labels is None and (folder / "labels.txt").is_file():
                labels = folder / "labels.txt"
        loaded = [_load_image(i) for i in images]
        if not loaded:
            raise ValueError("no images to evaluate")
        names = [n for n, _, _ in loaded]
        if len(set(names)) != len(names):
            raise ValueError("two images of one name: the server keys uploads by file name")
        fields = [("image", (n, d, t)) for n, d, t in loaded]
        if labels is not None:
            if isinstance(labels, dict):
                text = "".join(f"{k}\t{int(v)}\n" for k, v in labels.items())
            elif isinstance(labels, Path) or (isinstance(labels, str) and "\t" not in labels):
                text = Path(labels).read_text()
            else:
                text = labels
            fields.append(("labels", ("labels.txt", text.encode(), "text/plain")))
        params = {"eps": _eps_text(eps), "quality": _eps_text(quality), "seed": seed}
        fields += [(k, (None, str(v))) for k, v in _attack_query(menu).items()]
        ans = self._json("POST", "/evaluate", params=params, files=fields)
        return ans["id"]

    def jobs(self):
        """GET /jobs: {"jobs": [...]}."""
        return self._json("GET", "/jobs")

    def job(self, job_id):
        """GET /jobs/{id}: status (queued|running|done|failed|canceled), done, total,
        images_per_s, eta_s."""
        return self._json("GET", self._job_path(job_id))

    def wait(self, job_id, interval=1.0, timeout=None, progress=None):
        """Polls the job until it has ended; returns its last state when done.

        Raises JobError when it failed or was canceled, TimeoutError after
        timeout seconds. progress, if given, is called with each state. A
        few polls in a row that get 503 or no answer (a restarting daemon)
        are tolerated.
        """
        t0, misses = time.monotonic(), 0
        while True:
            try:
                st = self.job(job_id)
                misses = 0
            except ServerError as e:
                if e.status not in (0, 503) or misses >= 10:
                    raise
                misses += 1
                time.sleep(max(interval, e.retry_after or 0))
                continue
            if progress:
                progress(st)
            if st.get("status") == "done":
                return st
            if st.get("status") in ("failed", "canceled"):
                raise JobError(st)
            if timeout is not None and time.monotonic() - t0 > timeout:
                raise TimeoutError(f"job {st.get('id')} not done after {timeout} s")
            time.sleep(interval)

    def result(self, job_id):
        """GET /jobs/{id}/result: n, eps, quality, seed, and "table" (Table 1 with box statistics)."""
        return self._json("GET", self._job_path(job_id, "/result"))

    def rows_csv(self, job_id):
        """GET /jobs/{id}/rows as the CSV text."""
        return self.request("GET", self._job_path(job_id, "/rows"),
                            headers={"Accept": "text/csv"}).text

    def rows(self, job_id, as_dataframe=None):
        """The job's rows: one per image with file, truth, label_x and per transform
        "T:prob" and "T:label".

        A pandas DataFrame when pandas is installed (as_dataframe=None) or
        asked for (True); else (or with False) a list of dicts of strings.
        """
        text = self.rows_csv(job_id)
        if as_dataframe is not False:
            try:
                import pandas as pd
            except ImportError:
                if as_dataframe:
                    raise
            else:
                return pd.read_csv(io.StringIO(text))
        return list(csv.DictReader(io.StringIO(text)))

    def figure(self, job_id, number):
        """GET /jobs/{id}/figure3.svg or figure4.svg (number 3 or 4) as the SVG text."""
        if number not in (3, 4):
            raise ValueError(f"the server draws Figures 3 and 4, not {number!r}")
        return self.request("GET", self._job_path(job_id, f"/figure{number}.svg"),
                            headers={"Accept": "image/svg+xml"}).text

    def cancel(self, job_id):
        """DELETE /jobs/{id}: the job's state after the cancel."""
        return self._json("DELETE", self._job_path(job_id))
