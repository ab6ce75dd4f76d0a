"""The console in a real headless browser (Debian's chromium through chromedriver, driven by
selenium): tests/console.rs runs this against a running Trellis serving
examples/walkthrough.yaml (on free ports) and checks the JSON summary it prints last.

    console_browser.py ADMIN_ADDR LISTENER_PORT INSTANCE_PID SCREENSHOT_DIR

Every wait is bounded. The directory's network row must list its services as links named after
them. The service page must show the service's total traffic card and latency charts, which
update as more requests arrive. The instance backend (INSTANCE_PID) is stopped midway: its
target must turn UNHEALTHY in the page already open, within its health-check settings' time
plus 2 s.
"""
import json
import re
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid

# Offline and private: Selenium Manager must not look for drivers or send usage statistics
# (the driver is Debian's chromedriver, given by path below).
os.environ.setdefault("SE_OFFLINE", "true")
os.environ.setdefault("SE_AVOID_STATS", "true")

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

admin, listener_port, instance_pid, shots = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
base = f"http://{admin}"
os.makedirs(shots, exist_ok=True)
summary = {}


def fail(why):
    print(json.dumps({"failed": why, **summary}))
    sys.exit(1)


def wait_until(what, seconds, check):
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as e:  # an element not there yet
            last = e
        time.sleep(0.1)
    fail(f"{what} not within {seconds}s (last: {last!r}); page text: {body()[:2000]!r}")


def body():
    try:
        return driver.find_element(By.TAG_NAME, "body").text
    except Exception:
        return ""


def full_page_screenshot(path):
    """The whole page, not only the window's height (the service page's charts are below the
    routing picture): the window is made as tall as the page for the shot, then restored."""
    size = driver.get_window_size()
    height = driver.execute_script("return document.documentElement.scrollHeight + window.outerHeight - window.innerHeight")
    driver.set_window_size(size["width"], min(max(height, size["height"]), 4000))
    time.sleep(0.3)
    driver.save_screenshot(path)
    driver.set_window_size(size["width"], size["height"])


def curl(path, request_id=None):
    """A request to the service as any client sends it: curl, Host set to the service's name."""
    args = ["curl", "-s", "-m", "10", "-H", "Host: lattice-svc.trellis.localhost"]
    if request_id:
        args += ["-H", f"x-amzn-requestid: {request_id}"]
    return subprocess.run(args + [f"http://127.0.0.1:{listener_port}{path}"], capture_output=True, text=True, timeout=15).stdout


options = Options()
for arg in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"]:
    options.add_argument(arg)
options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=options)
driver.set_page_load_timeout(30)
try:
    # The directory lists the walkthrough's service, its network and VPC association.
    driver.get(f"{base}/ui/")
    wait_until("the directory's service", 10, lambda: "lattice-svc" in body() and "demo-network" in body() and "client-vpc" in body())
    summary["directory"] = body()
    # The network's Services cell: exactly its services' names, each a link to its page.
    cell = driver.find_element(By.CSS_SELECTOR, "tr.network-row[data-network='demo-network'] td.network-services")
    links = [(a.text, a.get_attribute("href")) for a in cell.find_elements(By.TAG_NAME, "a")]
    if cell.text != "lattice-svc" or links != [("lattice-svc", f"{base}/ui/services/lattice-svc")]:
        fail(f"the network's Services cell is not a link per service: {cell.text!r}, links {links!r}")
    summary["network_services"] = cell.text
    driver.save_screenshot(f"{shots}/directory.png")

    # Some traffic so the charts have something to draw.
    for i in range(30):
        curl("/" if i % 3 else "/to-function")

    # The routing picture: both rules, and the default action's 20/10 weights.
    driver.get(f"{base}/ui/services/lattice-svc")
    wait_until("both rules in the routing picture", 10, lambda: "to-instance" in body() and "to-function" in body())
    weights = wait_until("the 20/10 weights", 10, lambda: (lambda w: w if "20" in w and "10" in w else None)(
        [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".weight")]))
    summary["weights"] = weights
    # The instance target's element: the one whose port is not the function's.
    instance_targets = lambda: [e for e in driver.find_elements(By.CSS_SELECTOR, "[data-target^='127.0.0.1:']")]
    wait_until("the instance target HEALTHY", 15, lambda: instance_targets() and all("HEALTHY" in e.text for e in instance_targets()))
    wait_until("a traffic chart", 10, lambda: driver.find_elements(By.CSS_SELECTOR, "[data-traffic='instance-tg'] canvas.classes"))
    # The service's total (its target groups' and no group's requests together) with its
    # latency chart, and both update as requests arrive: 10 more to the instance show up in
    # the total's count and as a newer second on its latency chart, within a few seconds.
    total = "[data-traffic-service='lattice-svc']"
    wait_until("the service's total with the first 30 requests", 10, lambda: int(
        driver.find_element(By.CSS_SELECTOR, total).get_attribute("data-requests") or 0) >= 30)
    latency = lambda: driver.find_element(By.CSS_SELECTOR, f"{total} canvas.latency")
    requests_before = int(driver.find_element(By.CSS_SELECTOR, total).get_attribute("data-requests"))
    t_before = float(latency().get_attribute("data-t"))
    for i in range(10):
        curl("/to-instance")
    wait_until("the 10 new requests in the service's total", 5, lambda: int(
        driver.find_element(By.CSS_SELECTOR, total).get_attribute("data-requests")) >= requests_before + 10)
    wait_until("a newer second on the latency chart", 5, lambda: float(latency().get_attribute("data-t")) > t_before)
    p50, p99 = float(latency().get_attribute("data-p50")), float(latency().get_attribute("data-p99"))
    if not 0 < p50 <= p99:
        fail(f"the latency chart's p50 {p50} and p99 {p99}")
    group_latency = driver.find_elements(By.CSS_SELECTOR, "[data-traffic='instance-tg'] canvas.latency[data-p99]")
    if not group_latency:
        fail("no latency chart on the instance-tg card")
    summary["service_total"] = driver.find_element(By.CSS_SELECTOR, total).text
    summary["latency_ms"] = [p50, p99]
    # A few seconds of mixed traffic, so that the screenshot's charts have a shape.
    for i in range(8):
        for path in ["/", "/to-function", "/to-instance", "/"][: 1 + i % 4]:
            curl(path)
        time.sleep(0.4)
    time.sleep(1.5)
    full_page_screenshot(f"{shots}/service.png")

    # Stop the backend; the open page must show UNHEALTHY in time (no reload).
    service = json.loads(subprocess.run(["curl", "-s", f"{base}/ui/api/services/lattice-svc"], capture_output=True, text=True).stdout)
    hc = service["listeners"][0]["rules"][0]["action"]["forward"][0]["healthCheck"]
    budget = hc["intervalSeconds"] * hc["unhealthyThreshold"] + 2
    os.kill(instance_pid, signal.SIGKILL)
    stopped = time.monotonic()
    wait_until(f"UNHEALTHY within {budget}s", budget, lambda: instance_targets() and all("UNHEALTHY" in e.text for e in instance_targets()))
    summary["unhealthy_after_s"] = round(time.monotonic() - stopped, 2)
    summary["unhealthy_budget_s"] = budget
    driver.save_screenshot(f"{shots}/service-unhealthy.png")

    # The live tail: a request sent with curl appears within 2 s.
    driver.get(f"{base}/ui/logs")
    wait_until("the live tail connected", 10, lambda: driver.find_element(By.ID, "state").text == "live")
    rid = f"browser-{uuid.uuid4()}"
    curl("/to-function", rid)
    sent = time.monotonic()
    row = wait_until("the curl request in the log tail", 2, lambda: driver.find_elements(By.CSS_SELECTOR, f'[data-request-id="{rid}"]'))
    summary["tail_after_s"] = round(time.monotonic() - sent, 2)
    row[0].click()
    wait_until("the record's JSON", 2, lambda: rid in row[0].find_element(By.TAG_NAME, "pre").text)
    for i in range(3):
        curl("/to-function")
    time.sleep(0.5)
    driver.save_screenshot(f"{shots}/logs.png")

    # Functions: a request shows up in the function's last invocations with its status and
    # duration, and what the function prints (and its START line) in its log tail within 2 s;
    # the first invocation of the run, earlier, is marked as a cold start.
    driver.get(f"{base}/ui/functions")
    card = "[data-function='hello-function']"
    wait_until("the function", 10, lambda: "hello-function" in body() and "success" in body())
    wait_until("the cold start of the first invocation", 5,
               lambda: driver.find_elements(By.CSS_SELECTOR, f"{card} .badge.cold"))
    time.sleep(0.5)  # the log tail connects
    rid = f"browser-fn-{uuid.uuid4()}"
    curl("/to-function", rid)
    sent = time.monotonic()
    log = lambda: driver.find_element(By.CSS_SELECTOR, f"[data-function-log='hello-function']").text
    wait_until("the function's START line and its own output in its log tail", 2,
               lambda: f"START RequestId: {rid}" in log() and "GET /to-function" in log())
    summary["function_log_after_s"] = round(time.monotonic() - sent, 2)
    row = wait_until("the invocation in the last invocations", 3,
                     lambda: driver.find_elements(By.CSS_SELECTOR, f'{card} tr[data-request-id="{rid}"]'))
    row_text = row[0].text
    if "200" not in row_text or "success" not in row_text or " ms" not in row_text:
        fail(f"the invocation's row lacks its status or duration: {row_text!r}")
    summary["function_row"] = row_text
    wait_until(f"the REPORT line of {rid}", 2, lambda: f"REPORT RequestId: {rid}" in log())
    driver.save_screenshot(f"{shots}/functions.png")

    # The send-a-request form returns the function's answer and says which rule served it.
    driver.get(f"{base}/ui/send")
    wait_until("the form", 10, lambda: driver.find_elements(By.ID, "send-path"))
    Select(driver.find_element(By.ID, "send-service")).select_by_value("lattice-svc")
    Select(driver.find_element(By.ID, "send-method")).select_by_visible_text("POST")
    path = driver.find_element(By.ID, "send-path")
    path.clear()
    path.send_keys("/to-function")
    driver.find_element(By.ID, "send-body").send_keys("from the form")
    # Signed as the config's identity (walkthrough.yaml has none: the default test/test).
    Select(driver.find_element(By.ID, "send-identity")).select_by_value("test")
    driver.find_element(By.ID, "send-button").click()
    answer = wait_until("the form's answer", 15, lambda: driver.find_element(By.ID, "answer-body").text)
    if "Hello from the function" not in answer:
        fail(f"the form's answer is not the function's: {answer!r}")
    route = driver.find_element(By.ID, "answer-route").text
    if "to-function" not in route or "function-tg" not in route:
        fail(f"the form does not say which rule and target group served it: {route!r}")
    signed = driver.find_element(By.ID, "answer-signed").text
    if not re.search(r"signed \(SigV4\) as arn:aws:iam::\d{12}:user/test$", signed):
        fail(f"the form does not say it signed as the test identity: {signed!r}")
    record = driver.find_element(By.ID, "answer").get_attribute("textContent")
    if not re.search(r'"callerPrincipal": "arn:aws:iam::\d{12}:user/test"', record):
        fail(f"the access-log record shows no signed caller: {record[-600:]!r}")
    summary["form_signed"] = signed
    summary["form_answer"] = answer
    summary["form_route"] = route
    driver.save_screenshot(f"{shots}/send.png")
finally:
    driver.quit()
print(json.dumps(summary))
