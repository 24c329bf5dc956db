"""The console in a real headless browser (Debian's Chromium driven by Selenium): an operator
logs in, browses to a topic, reads a produced message with its headers, and watches a Kafka
group's lag drop as it consumes. The screenshot is kept as a test artifact (and, with
PYGGY_UPDATE_SCREENSHOT=1, written to docs/console.png for the README)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from confluent_kafka import Consumer as KafkaConsumer
from confluent_kafka import TopicPartition
from rest_client import Client, b64, header

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
REPO = Path(__file__).resolve().parents[2]


def _chromium() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser and driver:
        return browser, driver
    message = "chromium and chromedriver missing: run scripts/install-test-deps.sh"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = _chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1280,1500", "--disable-gpu"):
        options.add_argument(arg)
    b = webdriver.Chrome(service=Service(driver), options=options)
    b.implicitly_wait(0)
    yield b
    b.quit()


def test_an_operator_browses_a_topic_and_watches_lag_drop(http_door, browser, tmp_path):
    server, base = http_door
    rest = Client(base)
    rest.login()
    assert rest.post("/streams", {"name": "shop"})[0] == 201
    assert rest.post("/streams/shop/topics", {"name": "orders", "partitions_count": 2})[0] == 201
    for i in range(3):
        assert rest.send("/streams/shop/topics/orders", 0, {
            "payload": b64(f'{{"order": {i}, "item": "tea"}}'),
            "user_headers": [header("traceparent", TRACEPARENT), header("source", "web")]})[0] \
            == 201
    assert rest.send("/streams/shop/topics/orders", 1,  # a longer partition: paging caps
                     *({"payload": b64(f"bulk {i}")} for i in range(150)))[0] == 201
    kafka = KafkaConsumer({"bootstrap.servers": server.kafka_address, "group.id": "billing",
                           "enable.auto.commit": False, "client.id": "billing-1"})
    try:
        kafka.commit(offsets=[TopicPartition("shop.orders", 0, 0)], asynchronous=False)
        browse(browser, base, kafka, tmp_path)
    finally:
        kafka.close()


def browse(browser, base: str, kafka, tmp_path: Path) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    # tables are re-rendered (lag every 2 s, messages on each load): an element found just
    # before a re-render is stale, and the condition is simply checked again
    wait = WebDriverWait(browser, 30, ignored_exceptions=[StaleElementReferenceException])
    browser.get(base + "/")
    wait.until(ec.visibility_of_element_located((By.ID, "username"))).send_keys("iggy")
    browser.find_element(By.ID, "password").send_keys("iggy")
    browser.find_element(By.ID, "login-button").click()
    wait.until(ec.element_to_be_clickable((By.LINK_TEXT, "shop"))).click()
    wait.until(ec.element_to_be_clickable((By.LINK_TEXT, "orders"))).click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "partitions"), "3"))
    # a Kafka group with all 3 messages left
    lag = (By.CSS_SELECTOR, '#lag tr[data-door="kafka"][data-group="billing"] td.lag')
    wait.until(ec.text_to_be_present_in_element(lag, "3"))
    # the message browser: one page, JSON payload, headers with the trace link
    browser.find_element(By.ID, "page-size").clear()
    browser.find_element(By.ID, "page-size").send_keys("2")
    browser.find_element(By.ID, "format").send_keys("json")
    browser.find_element(By.ID, "load").click()
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#messages tr.message")) == 2)
    first = browser.find_element(By.CSS_SELECTOR, "#messages tr.message")
    assert '"item": "tea"' in first.text
    link = first.find_element(By.CSS_SELECTOR, 'a.trace')
    assert link.text == TRACEPARENT
    assert link.get_attribute("href").endswith("/trace/4bf92f3577b34da6a3ce929d0e0e4736")
    assert "source = web" in first.text
    browser.find_element(By.ID, "next-page").click()  # the next page: offset 2 alone
    wait.until(lambda b: [r.text.split()[0] for r in
                          b.find_elements(By.CSS_SELECTOR, "#messages tr.message")] == ["2"])
    # the group consumes everything and commits: the console's lag drops to 0
    kafka.assign([TopicPartition("shop.orders", 0, 0)])
    consumed = 0
    for _ in range(60):
        record = kafka.poll(1.0)
        if record is not None and record.error() is None:
            consumed += 1
        if consumed == 3:
            break
    assert consumed == 3
    kafka.commit(asynchronous=False)
    wait.until(ec.text_to_be_present_in_element(lag, "0"))
    browser.find_element(By.ID, "from").clear()
    browser.find_element(By.ID, "from").send_keys("0")
    browser.find_element(By.ID, "load").click()
    wait.until(lambda b: [r.text.split()[0] for r in
                          b.find_elements(By.CSS_SELECTOR, "#messages tr.message")] == ["0", "1"])
    shot = tmp_path / "console.png"
    assert browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    artifacts = os.environ.get("PYGGY_TEST_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(artifacts) / "console.png")
    if os.environ.get("PYGGY_UPDATE_SCREENSHOT") == "1":
        shutil.copy(shot, REPO / "docs" / "console.png")
    # however large the page asked for, one request loads at most 100 messages
    browser.find_element(By.ID, "partition").send_keys("1")
    browser.find_element(By.ID, "page-size").clear()
    browser.find_element(By.ID, "page-size").send_keys("1000")
    browser.find_element(By.ID, "load").click()
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#messages tr.message")) == 100)
    browser.find_element(By.ID, "next-page").click()
    wait.until(lambda b: b.find_element(By.CSS_SELECTOR, "#messages tr.message").text
               .startswith("100"))
    assert len(browser.find_elements(By.CSS_SELECTOR, "#messages tr.message")) == 50
    # users and permissions, for an admin
    browser.find_element(By.ID, "nav-users").click()
    wait.until(ec.element_to_be_clickable((By.LINK_TEXT, "iggy"))).click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "global-permissions"), "manage_servers"))
