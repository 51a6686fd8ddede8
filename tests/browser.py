"""Load a page in headless Chromium with the network off, over the DevTools protocol; report what happened.

Used by the report tests: console errors, failed or external requests, the
images' natural sizes and a full-page screenshot, as a person opening the
file would see it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return None


class _Session:
    def __init__(self, ws_url: str):
        import websocket

        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self.next_id, self.events = 0, []

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_for(self, method: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {method} within {timeout} s")
            self.events.append(json.loads(self.ws.recv()))


def load_page(path: Path) -> dict:
    """Open file://PATH offline; return console_errors, failed_requests, external_requests, images, screenshot."""
    import base64

    chromium = find_chromium()
    # Chromium's helper processes may still write to the profile after the browser exits: a profile left
    # half-removed is harmless, a failed test is not
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        proc = subprocess.Popen(
            [
                chromium,
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                "--host-resolver-rules=MAP * ~NOTFOUND",
                "--proxy-server=127.0.0.1:9",
                "--window-size=1200,900",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + 30
            while not (port_file.exists() and port_file.read_text().strip()):
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("Chromium did not start its DevTools server")
                time.sleep(0.1)
            port = port_file.read_text().split()[0]
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
                page = next(t for t in json.load(r) if t["type"] == "page")
            s = _Session(page["webSocketDebuggerUrl"])
            for domain in ("Page", "Runtime", "Log", "Network"):
                s.call(f"{domain}.enable")
            s.call(
                "Network.emulateNetworkConditions", offline=True, latency=0, downloadThroughput=-1, uploadThroughput=-1
            )
            s.events.clear()
            s.call("Page.navigate", url=Path(path).resolve().as_uri())
            s.wait_for("Page.loadEventFired")
            images = s.call(
                "Runtime.evaluate",
                returnByValue=True,
                expression=("Array.from(document.images).map(i => [i.naturalWidth, i.naturalHeight, i.complete])"),
            )
            size = s.call("Page.getLayoutMetrics")["cssContentSize"]
            shot = s.call(
                "Page.captureScreenshot",
                format="png",
                captureBeyondViewport=True,
                clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
            )
            ev = s.events
            s.ws.close()
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    console = [
        e["params"]
        for e in ev
        if e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert")
    ]
    console += [e["params"] for e in ev if e.get("method") == "Runtime.exceptionThrown"]
    console += [
        e["params"]["entry"]
        for e in ev
        if e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error"
    ]
    requested = [e["params"]["request"]["url"] for e in ev if e.get("method") == "Network.requestWillBeSent"]
    return {
        "console_errors": console,
        "failed_requests": [e["params"] for e in ev if e.get("method") == "Network.loadingFailed"],
        "external_requests": [u for u in requested if not u.startswith(("data:", "file:"))],
        "images": images["result"]["value"],
        "screenshot": base64.b64decode(shot["data"]),
    }


if __name__ == "__main__":  # python tests/browser.py PAGE.html SHOT.png: the README's screenshot
    import sys

    result = load_page(Path(sys.argv[1]))
    Path(sys.argv[2]).write_bytes(result["screenshot"])
    print(
        f"{len(result['images'])} images, {len(result['console_errors'])} console errors, "
        f"{len(result['failed_requests'])} failed requests"
    )
