"""The screenshots of the web page (docs/guide/web-page.md), with the real default model on real data:

    python docs/page_screenshots.py        # writes docs/images/page-search.png and page-map.png

A collection of the Banking77 train texts of ten intents (payload: the intent), served by
`uniembed serve` in-process, driven by Debian's chromium as tests/test_page_browser.py drives it.
Needs ../shared/data, chromium and chromium-driver.
"""

from __future__ import annotations

import csv
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "banking77"
OUT = ROOT / "docs" / "images"
INTENTS = 10


def main() -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    import httpx
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    import uniembed
    from serve_helpers import live_server
    from test_page_browser import hits, open_page, search_by_keyboard, wait
    from uniembed.serve import ServeSettings, create_app

    with (DATA / "train.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    intents = sorted({row["category"] for row in rows})[:INTENTS]
    rows = [row for row in rows if row["category"] in intents]
    model = uniembed.load()
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        settings = ServeSettings(collections=Path(tmp) / "collections")
        with live_server(create_app(settings, encoder=model)) as url:
            httpx.post(
                f"{url}/v1/collections", json={"name": "banking77", "index": "hnsw"}
            ).raise_for_status()
            items = [
                {"id": f"t{i}", "text": row["text"], "payload": {"intent": row["category"]}}
                for i, row in enumerate(rows)
            ]
            for start in range(0, len(items), 500):
                httpx.post(
                    f"{url}/v1/collections/banking77/items",
                    json={"items": items[start : start + 500]},
                    timeout=300,
                ).raise_for_status()
            browser = _browser()
            try:
                open_page(browser, url, "banking77")
                search_by_keyboard(browser, "my card payment was declined")
                wait(browser, lambda d: len(hits(d)) == 10, "hits")
                browser.save_screenshot(str(OUT / "page-search.png"))
                browser.find_element(By.ID, "tab-map").click()
                wait(
                    browser,
                    lambda d: (
                        d.find_element(By.ID, "map").get_attribute("data-points") == str(len(items))
                    ),
                    "map",
                )
                Select(browser.find_element(By.ID, "color-by")).select_by_value("intent")
                wait(
                    browser,
                    lambda d: len(d.find_elements(By.CSS_SELECTOR, "#legend li")) == INTENTS,
                    "legend",
                )
                browser.save_screenshot(str(OUT / "page-map.png"))
            finally:
                browser.quit()
    print(f"{len(items)} texts; screenshots in {OUT}")


def _browser():
    from selenium import webdriver

    from test_page_browser import CHROMIUM, DRIVER

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--window-size=1100,1000",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(argument)
    return webdriver.Chrome(
        options=options, service=webdriver.ChromeService(executable_path=DRIVER)
    )


if __name__ == "__main__":
    main()
