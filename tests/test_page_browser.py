"""The web page in a real browser: Debian's chromium, headless, driven by selenium through
chromedriver, against a live `uniembed serve` app on loopback. Screenshots of each state go to
$UNIEMBED_SCREENSHOTS (the README's come from there) or the test's temporary folder.

Skipped, with the reason printed, when chromium, chromedriver or selenium is missing; test_page.py
still checks every asset over plain HTTP then.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import httpx
import pytest

from serve_helpers import live_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
if not (CHROMIUM and DRIVER):
    pytest.skip(
        "browser tests need Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
        allow_module_level=True,
    )
pytest.importorskip("selenium", reason="browser tests need selenium (pip install -e '.[test]')")
pytest.importorskip("fastapi")

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

from uniembed.serve import ServeSettings, create_app  # noqa: E402

AXE = Path(__file__).parent / "assets" / "axe-core" / "axe.min.js"
TOPICS = ["cat", "dog", "bank", "rain", "river", "stone"]
WAIT = 30


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("UNIEMBED_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"screenshots in {folder}")
    return folder


@pytest.fixture(scope="module")
def site(tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("page")
    results = root / "results"
    (results / "tiny").mkdir(parents=True)
    (results / "tiny" / "SciFact.json").write_text(
        json.dumps(
            {
                "task_name": "SciFact",
                "model_name": "tiny",
                "evaluation_time": 3.0,
                "scores": {"test": [{"main_score": 0.4321, "ndcg_at_10": 0.4321}]},
            }
        )
    )
    (results / "collection.json").write_text(
        json.dumps(
            {
                "bench": "collection",
                "date": "2026-11-30",
                "tables": {
                    "SciFact quality vs memory": [
                        {
                            "configuration": "exact float32",
                            "nDCG@10": 64.51,
                            "bytes/vector": 1536.0,
                        },
                        {
                            "configuration": "int8 + rescore x4",
                            "nDCG@10": 64.51,
                            "bytes/vector": 384.0,
                        },
                        {
                            "configuration": "binary + rescore x4",
                            "nDCG@10": 63.79,
                            "bytes/vector": 48.0,
                        },
                    ]
                },
            }
        )
    )
    settings = ServeSettings(
        model="tiny", collections=root / "collections", results_dirs=(results,)
    )
    with live_server(create_app(settings, encoder=tiny_model)) as url:
        for name in ("docs", "empty", "doomed"):
            assert httpx.post(f"{url}/v1/collections", json={"name": name}).status_code == 201
        items = [
            {
                "id": f"d{i}",
                "text": f"{TOPICS[i % 6]} story number {i} about the {TOPICS[(i * 5) % 6]}",
                "payload": {"topic": TOPICS[i % 6], "n": i},
            }
            for i in range(240)
        ]
        for name, rows in (("docs", items), ("doomed", items[:20])):
            for start in range(0, len(rows), 100):
                response = httpx.post(
                    f"{url}/v1/collections/{name}/items", json={"items": rows[start : start + 100]}
                )
                assert response.status_code == 200, response.text
        yield url


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1100",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(
        options=options, service=webdriver.ChromeService(executable_path=DRIVER)
    )
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


def wait(driver, condition, message: str):
    # the page re-renders lists as results arrive: an element read mid-render is simply read again
    return WebDriverWait(driver, WAIT, ignored_exceptions=(StaleElementReferenceException,)).until(
        condition, message
    )


def open_page(driver, url: str, collection: str = "docs"):
    driver.get(url + "/")
    wait(
        driver,
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true",
        "page ready",
    )
    Select(driver.find_element(By.ID, "collection")).select_by_value(collection)
    wait(
        driver,
        lambda d: "items" in d.find_element(By.ID, "collection-info").text,
        "collection info",
    )


def search_by_keyboard(driver, query: str, filter_text: str = ""):
    field = driver.find_element(By.ID, "filter")
    field.clear()
    if filter_text:
        field.send_keys(filter_text)
    box = driver.find_element(By.ID, "query")
    box.clear()
    box.send_keys(query, Keys.ENTER)


def hits(driver) -> list:
    return driver.find_elements(By.CSS_SELECTOR, "#hits li")


def serious_violations(driver) -> list[str]:
    driver.execute_script(AXE.read_text(encoding="utf-8"))
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document).then((r) => done(r.violations));"
    )
    return [
        f"{v['id']}: {v['help']} ({len(v['nodes'])} nodes)"
        for v in result
        if v["impact"] in ("serious", "critical")
    ]


def test_search_with_the_keyboard_only(site, browser, shots):
    open_page(browser, site)
    info = browser.find_element(By.ID, "collection-info").text
    assert (
        "240 items" in info
        and "model tiny" in info
        and "index exact" in info
        and "B/vector" in info
    )
    browser.execute_script("document.getElementById('api-key').focus()")
    order = []
    for _ in range(
        7
    ):  # the tab order from the key field: its button, the collection, the Search tab, ...
        ActionChains(browser).send_keys(Keys.TAB).perform()
        order.append(browser.switch_to.active_element.get_attribute("id"))
    assert order == [
        "key-button",
        "collection",
        "tab-search",
        "query",
        "search-button",
        "mode",
        "filter",
    ], order
    for _ in range(3):  # back to the query, typed and sent with Enter
        ActionChains(browser).key_down(Keys.SHIFT).send_keys(Keys.TAB).key_up(Keys.SHIFT).perform()
    assert browser.switch_to.active_element.get_attribute("id") == "query"
    ActionChains(browser).send_keys("cat story", Keys.ENTER).perform()
    wait(browser, lambda d: len(hits(d)) == 10, "ten hits")
    first = hits(browser)[0].text
    assert "score" in first and "story number" in first and '"topic"' in first
    assert "10 hits" in browser.find_element(By.ID, "search-status").text
    browser.save_screenshot(str(shots / "page-search.png"))
    assert serious_violations(browser) == []


def test_a_filter_and_an_error_the_page_survives(site, browser, shots):
    open_page(browser, site)
    search_by_keyboard(browser, "story", "topic==cat")
    error = wait(
        browser,
        lambda d: (
            d.find_element(By.ID, "error")
            if d.find_element(By.ID, "error").is_displayed()
            else None
        ),
        "the API's error shown",
    )
    assert (
        "neither a plain value nor a quoted one" in error.text
    )  # the API's own message, not a blank page
    browser.save_screenshot(str(shots / "page-error.png"))
    search_by_keyboard(browser, "story", "topic=cat")
    wait(
        browser,
        lambda d: len(hits(d)) == 10 and not d.find_element(By.ID, "error").is_displayed(),
        "hits again",
    )
    assert all('"topic": "cat"' in hit.text for hit in hits(browser))


def test_the_map_hover_colour_zoom_and_hits(site, browser, shots):
    open_page(browser, site)
    search_by_keyboard(browser, "dog story")
    wait(browser, lambda d: len(hits(d)) == 10, "hits")
    browser.find_element(By.ID, "tab-map").click()
    canvas = browser.find_element(By.ID, "map")
    wait(browser, lambda d: canvas.get_attribute("data-points") == "240", "the map drawn")
    assert canvas.get_attribute("data-highlighted") == "10"  # the search's hits are ringed
    status = browser.find_element(By.ID, "map-status").text
    assert "240 of 240 items" in status and "10 of the last search's 10 hits on the map" in status
    Select(browser.find_element(By.ID, "color-by")).select_by_value("topic")
    wait(
        browser,
        lambda d: len(d.find_elements(By.CSS_SELECTOR, "#legend li")) == 6,
        "a legend of six topics",
    )
    # hover the point of d7: where the page draws it (its [-1, 1] coordinates on the 800 x 560 canvas)
    drawn = httpx.get(f"{site}/v1/collections/docs/map").json()
    x, y = drawn["points"][drawn["ids"].index("d7")]
    half = 280 * 0.92
    ActionChains(browser).move_to_element_with_offset(
        canvas, round(x * half), round(-y * half)
    ).perform()
    tooltip = browser.find_element(By.ID, "tooltip")
    wait(
        browser,
        lambda d: tooltip.is_displayed() and "story number" in tooltip.text,
        "the hovered item's text",
    )
    assert "topic = " in tooltip.text
    browser.save_screenshot(str(shots / "page-map.png"))
    before = browser.execute_script("return arguments[0].toDataURL()", canvas)
    browser.find_element(By.ID, "zoom-in").click()
    assert browser.execute_script("return arguments[0].toDataURL()", canvas) != before
    assert serious_violations(browser) == []


def test_the_evaluation_chart(site, browser, shots):
    open_page(browser, site)
    browser.find_element(By.ID, "tab-eval").click()
    wait(
        browser,
        lambda d: len(d.find_elements(By.CSS_SELECTOR, "#chart svg circle")) == 3,
        "three points",
    )
    assert (
        "nDCG@10 vs bytes/vector"
        in Select(browser.find_element(By.ID, "chart-select")).first_selected_option.text
    )
    rows = browser.find_elements(By.CSS_SELECTOR, "#results-table tbody tr")
    assert [row.text for row in rows] == ["tiny SciFact test 43.21"]
    browser.save_screenshot(str(shots / "page-evaluation.png"))
    assert serious_violations(browser) == []
    browser.execute_script("document.querySelector('main').append(document.createElement('input'))")
    assert any(v.startswith("label:") for v in serious_violations(browser))  # the check can fail


def test_an_empty_collection_says_so(site, browser):
    open_page(browser, site, "empty")
    browser.find_element(By.ID, "tab-map").click()
    status = browser.find_element(By.ID, "map-status")
    wait(browser, lambda d: "empty" in status.text, "the empty map said")


def test_a_collection_deleted_while_shown(site, browser):
    open_page(browser, site, "doomed")
    assert httpx.delete(f"{site}/v1/collections/doomed").status_code == 200
    search_by_keyboard(browser, "story")
    error = browser.find_element(By.ID, "error")
    wait(
        browser,
        lambda d: error.is_displayed() and "no collection named 'doomed'" in error.text,
        "the 404 shown",
    )
    Select(browser.find_element(By.ID, "collection")).select_by_value("docs")  # still usable
    search_by_keyboard(browser, "story")
    wait(
        browser,
        lambda d: len(hits(d)) == 10 and not error.is_displayed(),
        "hits from another collection",
    )


def test_an_image_query_from_a_file_or_dropped(clip_model, browser, tmp_path, shots):
    import base64
    import io

    import numpy as np
    from PIL import Image

    def png(seed: int) -> bytes:
        buffer = io.BytesIO()
        pixels = np.random.default_rng(seed).integers(0, 256, size=(30, 40, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(buffer, format="PNG")
        return buffer.getvalue()

    settings = ServeSettings(model="clip", collections=tmp_path / "collections")
    with live_server(create_app(settings, encoder=clip_model)) as url:
        assert (
            httpx.post(
                f"{url}/v1/collections", json={"name": "pics", "images": "bytes"}
            ).status_code
            == 201
        )
        items = [
            {
                "id": f"p{i}",
                "image": "data:image/png;base64," + base64.b64encode(png(i)).decode(),
                "text": caption,
            }
            for i, caption in enumerate(["a red cat", "a blue dog", "money in the bank"])
        ]
        assert (
            httpx.post(f"{url}/v1/collections/pics/items", json={"items": items}).status_code == 200
        )
        open_page(browser, url, "pics")
        assert browser.find_element(By.ID, "image-row").is_displayed()
        (tmp_path / "query.png").write_bytes(png(1))
        browser.find_element(By.ID, "image").send_keys(str(tmp_path / "query.png"))  # a file chosen
        wait(
            browser, lambda d: "query.png" in d.find_element(By.ID, "drop").text, "the image taken"
        )
        browser.find_element(By.ID, "search-button").click()
        wait(browser, lambda d: len(hits(d)) == 3, "three hits")
        first = hits(browser)[0]
        assert first.text.startswith("p1") and "a blue dog" in first.text
        thumbnail = first.find_element(By.TAG_NAME, "img")
        assert thumbnail.get_attribute("src").startswith(
            "data:image/png;base64,"
        ) and "p1" in thumbnail.get_attribute("alt")
        browser.save_screenshot(str(shots / "page-image.png"))
        browser.execute_script(  # an image dropped on the page, as a drag from the desktop delivers it
            "const bytes = Uint8Array.from(atob(arguments[0]), (c) => c.charCodeAt(0));"
            "const transfer = new DataTransfer();"
            " transfer.items.add(new File([bytes], 'dropped.png', {type: 'image/png'}));"
            "document.getElementById('drop').dispatchEvent(new DragEvent('drop',"
            " {dataTransfer: transfer, bubbles: true, cancelable: true}));",
            base64.b64encode(png(2)).decode(),
        )
        wait(
            browser,
            lambda d: "dropped.png" in d.find_element(By.ID, "drop").text,
            "the dropped image taken",
        )
        browser.find_element(By.ID, "search-button").click()
        wait(
            browser,
            lambda d: hits(d) and hits(d)[0].text.startswith("p2"),
            "the dropped image's own item first",
        )


def test_a_server_with_an_api_key(tiny_model, browser, tmp_path):
    key = "k" * 20 + "-browser"
    settings = ServeSettings(model="tiny", collections=tmp_path / "collections", api_keys=(key,))
    with live_server(create_app(settings, encoder=tiny_model)) as url:
        created = httpx.post(
            f"{url}/v1/collections",
            json={"name": "secret"},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert created.status_code == 201
        browser.get(url + "/")
        error = browser.find_element(By.ID, "error")
        wait(
            browser,
            lambda d: error.is_displayed() and "invalid or missing API key" in error.text,
            "the 401 said",
        )
        assert browser.switch_to.active_element.get_attribute("id") == "api-key"  # where to type it
        ActionChains(browser).send_keys(key, Keys.ENTER).perform()
        wait(
            browser,
            lambda d: (
                "secret" in d.find_element(By.ID, "collection").text and not error.is_displayed()
            ),
            "the collections listed with the key",
        )
