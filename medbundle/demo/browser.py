"""Drive the demo as a user does: ``python -m medbundle.demo`` in a subprocess, headless Chromium through Selenium.

Used by the browser tests (``tests/demo``) and ``scripts/benchmark_demo.py``. Needs the system browser and driver
(Debian: ``apt-get install chromium chromium-driver``) and ``selenium``; nothing is downloaded.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

__all__ = ["missing_requirements", "free_port", "DemoServer", "DemoPage"]

#: where Debian's packages put the browser and its driver (``CHROMIUM`` / ``CHROMEDRIVER`` override them).
CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
CHROMEDRIVER = ("chromedriver",)


def _which(env: str, names: tuple[str, ...]) -> str | None:
    if os.environ.get(env):
        return os.environ[env] if Path(os.environ[env]).is_file() else None
    return next((p for p in map(shutil.which, names) if p), None)


def missing_requirements() -> str | None:
    """What is missing to drive the demo in a browser (one line, with the install command), or None."""
    missing = [what for what, ok in (
        ("streamlit (pip install -c constraints.txt -e '.[demo]')", _importable("streamlit")),
        ("selenium (pip install -c constraints.txt -e '.[dev]')", _importable("selenium")),
        ("chromium (apt-get install chromium)", _which("CHROMIUM", CHROMIUM)),
        ("chromedriver (apt-get install chromium-driver)", _which("CHROMEDRIVER", CHROMEDRIVER))) if not ok]
    return "missing: " + "; ".join(missing) if missing else None


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# Times one upload inside the page: the upload control's change event starts the clock; it stops at the first moment
# the caption names the file, the prediction heading is there and every captioned image has loaded (checked on each
# DOM mutation and each image load event, captured).
_TIMER_JS = """
const name = arguments[0], captions = arguments[1];
window.__mbStart = null; window.__mbShown = null;
const input = document.querySelector('[data-testid=stFileUploader] input[type=file]');
input.addEventListener('change', () => { window.__mbStart = performance.now(); }, {once: true, capture: true});
const loaded = (cap) => [...document.querySelectorAll('[data-testid=stImage]')].some((b) => {
  const img = b.querySelector('img');
  return b.textContent.trim() === cap && img !== null && img.complete && img.naturalWidth > 0;
});
const check = () => {
  if (window.__mbStart === null || window.__mbShown !== null) return;
  const named = [...document.querySelectorAll('[data-testid=stCaptionContainer]')]
    .some((c) => c.textContent.startsWith(name + ' ·'));
  if (!named || document.getElementById('prediction') === null || !captions.every(loaded)) return;
  window.__mbShown = performance.now();
  observer.disconnect();
  document.removeEventListener('load', check, true);
};
const observer = new MutationObserver(check);
observer.observe(document.body, {childList: true, subtree: true, characterData: true, attributes: true});
document.addEventListener('load', check, true);
"""


class DemoServer:
    """``python -m medbundle.demo --port <free port> <args>`` in a subprocess, its output in ``log``.

    Args:
        args: further demo arguments (``--bundle``, ``--run_dir``, ``--max_upload_mb``).
        log: the file the server's stdout and stderr go to.
        timeout: seconds to wait for the server to answer ``/_stcore/health``.
    """

    def __init__(self, *args: str, log: str | os.PathLike, timeout: float = 180.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = Path(log)
        self._out = open(self.log, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "medbundle.demo", "--port", str(self.port), *args],
                                     stdout=self._out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the demo did not start (exit code {self.proc.returncode}); its log "
                                   f"{self.log}:\n{self.log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.25)

    def healthy(self) -> bool:
        """Whether the server answers its health check now."""
        try:
            with urllib.request.urlopen(self.url + "_stcore/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        """End the server (SIGTERM, then SIGKILL after 10 s)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()


class DemoPage:
    """The demo page in headless Chromium.

    Args:
        url: the demo's address.
        width, height: the window size (the screenshot's size).
    """

    def __init__(self, url: str, width: int = 1400, height: int = 2000) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = _which("CHROMIUM", CHROMIUM)
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                    f"--window-size={width},{height}", "--no-first-run", "--disable-extensions",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync"):
            options.add_argument(arg)
        self.driver = webdriver.Chrome(service=Service(_which("CHROMEDRIVER", CHROMEDRIVER)), options=options)
        self.driver.get(url)
        self.file_input(timeout=60)

    def _wait(self, find, timeout: float, what: str, poll: float = 0.05):
        deadline = time.monotonic() + timeout
        while True:
            try:
                found = find()
            except Exception:  # the page re-rendered under us (stale element): look again
                found = None
            if found:
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} not shown within {timeout:.0f} s")
            time.sleep(poll)

    def file_input(self, timeout: float = 30):
        """The upload control's ``<input type=file>``."""
        from selenium.webdriver.common.by import By

        return self._wait(lambda: self.driver.find_elements(By.CSS_SELECTOR, "[data-testid=stFileUploader] "
                                                            "input[type=file]")[0:1], timeout, "the upload control")[0]

    def upload(self, path: str | os.PathLike) -> float:
        """Upload ``path``; the monotonic time it was handed to the page."""
        control = self.file_input()
        start = time.monotonic()
        control.send_keys(str(Path(path).resolve()))
        return start

    def upload_timed(self, path: str | os.PathLike, captions: tuple[str, ...], timeout: float = 120) -> float:
        """Upload ``path`` and return the milliseconds the browser took from the file being chosen (the upload
        control's ``change`` event) until the page shows the prediction for it and every image captioned
        ``captions`` has loaded, timed by the page itself (``performance.now()`` in a MutationObserver and the
        images' load events), so the driver's polling neither adds to nor delays the figure."""
        self.driver.execute_script(_TIMER_JS, Path(path).name, list(captions))
        self.upload(path)
        done = self._wait(lambda: self.driver.execute_script("return window.__mbShown !== null && "
                                                             "window.__mbStart !== null ? "
                                                             "window.__mbShown - window.__mbStart : null"),
                          timeout, f"the prediction and images for {Path(path).name}", poll=0.25)
        return float(done)

    def _labelled(self, testid: str, label: str, timeout: float):
        """The widget ``[data-testid=<testid>]`` whose label is ``label``."""
        from selenium.webdriver.common.by import By

        return self._wait(lambda: next((w for w in self.driver.find_elements(By.CSS_SELECTOR, f"[data-testid={testid}]")
                                        if w.text.splitlines()[:1] == [label]), None), timeout, f"the control {label!r}")

    def select(self, label: str, option: str, timeout: float = 30) -> None:
        """Choose ``option`` in the select box labelled ``label`` (type its text and press Enter, as a keyboard
        user would)."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys

        box = self._labelled("stSelectbox", label, timeout)
        field = box.find_element(By.TAG_NAME, "input")
        field.click()
        field.send_keys(option)
        self._wait(lambda: any(o.text == option for o in self.driver.find_elements(By.CSS_SELECTOR, "[role=option]")),
                   timeout, f"the option {option!r} of {label!r}")
        field.send_keys(Keys.ENTER)

    def type_text(self, label: str, text: str, timeout: float = 30) -> None:
        """Type ``text`` into the text field labelled ``label`` and press Enter (Streamlit applies it then)."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys

        field = self._labelled("stTextInput", label, timeout).find_element(By.TAG_NAME, "input")
        field.send_keys(text, Keys.ENTER)

    def result(self, name: str, timeout: float = 120) -> str:
        """The prediction heading (``Prediction: NORMAL``) once the page shows the answer for the file ``name``."""
        from selenium.webdriver.common.by import By

        def find():
            caption = any(c.text.startswith(f"{name} ·") for c in
                          self.driver.find_elements(By.CSS_SELECTOR, "[data-testid=stCaptionContainer]"))
            heading = self.driver.find_elements(By.ID, "prediction")
            return heading[0].text if caption and heading else None

        return self._wait(find, timeout, f"the prediction for {name}")

    def error(self, name: str = "", timeout: float = 120) -> str:
        """The text of the first error message on the page that names ``name``, once there is one."""
        from selenium.webdriver.common.by import By

        return self._wait(lambda: next((e.text for e in self.driver.find_elements(
            By.CSS_SELECTOR, "[data-testid=stAlertContentError]") if e.text and name in e.text), None), timeout,
            f"an error message about {name or 'anything'}")

    def images(self, captions: tuple[str, ...] = (), timeout: float = 60) -> dict[str, int]:
        """``{caption: natural width in pixels}`` of the images shown (0: not loaded), once every image captioned
        ``captions`` has loaded (or ``timeout`` has passed: then as they are)."""
        from selenium.webdriver.common.by import By

        def shown():
            out = {}
            for block in self.driver.find_elements(By.CSS_SELECTOR, "[data-testid=stImage]"):
                img = block.find_elements(By.TAG_NAME, "img")
                out[block.text.strip()] = int(img[0].get_attribute("naturalWidth") or 0) if img else 0
            return out

        try:
            return self._wait(lambda: (lambda o: o if all(o.get(c, 0) > 0 for c in captions) else None)(shown()),
                              timeout, "the images")
        except TimeoutError:
            return shown()

    def wait_text(self, fragment: str, timeout: float = 60) -> str:
        """The page's text once it contains ``fragment``."""
        return self._wait(lambda: (lambda t: t if fragment in t else None)(self.text()), timeout, repr(fragment))

    def text(self) -> str:
        """The visible text of the whole page."""
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.TAG_NAME, "body").text

    def screenshot(self, path: str | os.PathLike) -> Path:
        """Save the window as a PNG at ``path``."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(path))
        return Path(path)

    def close(self) -> None:
        self.driver.quit()
