#!/usr/bin/python3
"""Browser test of `lkprobe report`: opens a generated page in headless Chromium and checks
(1) no console errors, (2) no network request from the page (Chromium's net log; file: and data: loads never
enter it, and a self-test checks that a remote image would),
(3) every figure decoded with a non-zero size (a test-only copy of the page with an appended
script writes the verdict into the DOM, read back with --dump-dom), (4) desktop (1280 wide)
and phone (390 wide) screenshots are not blank, and the phone layout does not overflow
horizontally.  Standard library only.  Exit 77 (meson: skipped) when Chromium is absent.

Environment: LK_BUILD_ROOT (the built lkprobe), LK_SOURCE_ROOT (fixtures); optional
LK_REPORT_SCREENSHOT=PATH keeps the desktop screenshot (used for doc/report-screenshot.png).
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

CHROMIUM = "/usr/bin/chromium"
SKIP = 77


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def chromium(args, profile, timeout=120):
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--disable-default-apps", "--disable-extensions",
           "--hide-scrollbars", "--user-data-dir=" + profile] + args
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def console_errors(stderr):
    """Console messages of level error (Chromium logs them as ...:CONSOLE(n)] "msg")."""
    bad = []
    for line in stderr.splitlines():
        if "CONSOLE" in line and (":ERROR:" in line or "Uncaught" in line):
            bad.append(line)
        elif "Failed to load resource" in line or "net::ERR_" in line:
            bad.append(line)
    return bad


def net_log_requests(path):
    """(page, browser) URL lists of the URL requests in a Chromium net log.

    A request made on behalf of a page carries the page's origin as initiator (a file: page
    has the opaque origin "null"); the browser's own background traffic (component updater,
    account checks) has "not an origin".  file: and data: loads do not go through the network
    stack and never appear here, so any page request at all is a failure.
    """
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        text = f.read().strip()
    # The log of a browser that exited abruptly may lack its closing brackets.
    if not text.endswith("}"):
        text = text.rstrip(",\n ") + "]}"
    log = json.loads(text)
    types = {v: k for k, v in log["constants"]["logEventTypes"].items()}
    page, browser = [], []
    for e in log.get("events", []):
        if types.get(e.get("type")) != "URL_REQUEST_START_JOB":
            continue
        p = e.get("params", {})
        url = p.get("url", "")
        if url.startswith(("file:", "data:")):
            continue
        (browser if p.get("initiator", "not an origin") == "not an origin" else page).append(url)
    return page, browser


def check_network(url, work, expect_page_request=False):
    netlog = os.path.join(work, "net-%d.json" % len(os.listdir(work)))
    shot = netlog + ".png"
    rc, _, err = chromium(["--enable-logging=stderr", "--v=0", "--log-net-log=" + netlog,
                           "--net-log-capture-mode=Everything", "--virtual-time-budget=5000",
                           "--screenshot=" + shot, "--window-size=1280,2000", url],
                          tempfile.mkdtemp(dir=work))
    if rc != 0 or not os.path.exists(netlog):
        fail("chromium with a net log failed (exit %d): %s" % (rc, err[-2000:]))
    page, browser = net_log_requests(netlog)
    if expect_page_request:
        if not page:
            fail("net-log self-test: a page with a remote image showed no page request")
        return
    if browser:
        print("ignored %d browser-initiated background request(s)" % len(browser))
    if page:
        fail("network requests from the page: " + ", ".join(sorted(set(page))[:10]))
    errors = console_errors(err)
    if errors:
        fail("console errors:\n" + "\n".join(errors))


def png_stats(path):
    """(width, height, distinct colours, fraction of non-white pixels) of an 8-bit PNG."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        fail(path + ": not a PNG")
    pos, idat, w, h, depth, ctype = 8, b"", 0, 0, 0, 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    if depth != 8 or ctype not in (2, 6):
        fail("%s: unexpected PNG format depth %d colour type %d" % (path, depth, ctype))
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat)
    stride = w * bpp
    prev = bytearray(stride)
    colours, nonwhite = set(), 0
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + ((a + b) >> 1)) & 255
            elif f == 4:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                pr = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pr) & 255
        for x in range(0, stride, bpp * 2):  # every other pixel is plenty
            px = bytes(line[x:x + 3])
            colours.add(px)
            if px != b"\xff\xff\xff":
                nonwhite += 1
        prev = line
    return w, h, len(colours), nonwhite / float(max(1, (w // 2) * h))


CHECK_SCRIPT = """
<script>
window.addEventListener('load', function () {
  var bad = [], imgs = document.images, svgs = document.querySelectorAll('svg');
  for (var i = 0; i < imgs.length; i++) {
    var im = imgs[i];
    if (!im.complete || im.naturalWidth <= 0 || im.naturalHeight <= 0 || im.width <= 0)
      bad.push('img ' + i + ' ' + im.naturalWidth + 'x' + im.naturalHeight);
  }
  for (var j = 0; j < svgs.length; j++) {
    var b = svgs[j].getBBox();
    if (!(b.width > 0 && b.height > 0)) bad.push('svg ' + j);
  }
  var over = document.documentElement.scrollWidth - window.innerWidth;
  var out = document.createElement('pre');
  out.id = 'lk-verdict';
  out.textContent = 'VERDICT ' + (bad.length ? 'BAD ' + bad.join(';') : 'OK') +
      ' images=' + imgs.length + ' svgs=' + svgs.length + ' overflow=' + over + ' END';
  document.body.appendChild(out);
});
</script>
"""


def main():
    if not os.path.exists(CHROMIUM):
        print("SKIP: %s is not installed (apt-get install chromium); browser test not run"
              % CHROMIUM)
        return SKIP
    build = os.environ.get("LK_BUILD_ROOT")
    source = os.environ.get("LK_SOURCE_ROOT")
    if not build or not source:
        fail("LK_BUILD_ROOT and LK_SOURCE_ROOT must be set (meson test sets them)")
    lkprobe = os.path.join(build, "cli", "lkprobe")
    model = os.path.join(source, "tests", "fixtures", "zoo", "replknet.onnx")
    work = tempfile.mkdtemp(prefix="lkprobe-browser-")
    try:
        report = os.path.join(work, "report.html")
        p = subprocess.run([lkprobe, "report", model, "--noise", "4", "-o", report, "-q"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
        if p.returncode != 0:
            fail("lkprobe report failed: " + p.stderr.decode("utf-8", "replace"))
        url = "file://" + report

        # (2) no network request; first a self-test that the net-log check sees one.
        canary = os.path.join(work, "canary.html")
        with open(canary, "w", encoding="utf-8") as f:
            f.write('<!DOCTYPE html><html><body><img src="http://127.0.0.1:9/x.png" alt="x">'
                    '</body></html>')
        check_network("file://" + canary, work, expect_page_request=True)
        check_network(url, work)

        # (1) + (4): desktop screenshot with console logging.
        shot = os.path.join(work, "desktop.png")
        rc, _, err = chromium(["--enable-logging=stderr", "--v=0",
                               "--screenshot=" + shot, "--window-size=1280,2000", url],
                              tempfile.mkdtemp(dir=work))
        if rc != 0 or not os.path.exists(shot):
            fail("chromium screenshot failed (exit %d): %s" % (rc, err[-2000:]))
        errors = console_errors(err)
        if errors:
            fail("console errors:\n" + "\n".join(errors))
        w, h, ncol, ink = png_stats(shot)
        print("desktop screenshot %dx%d: %d colours, %.1f%% non-white" % (w, h, ncol, 100 * ink))
        if w != 1280 or ncol < 32 or ink < 0.03:
            fail("desktop screenshot looks blank")
        keep = os.environ.get("LK_REPORT_SCREENSHOT")
        if keep:
            shutil.copyfile(shot, keep)

        # (3): figures decoded, through a test-only copy with an appended script.
        with open(report, "r", encoding="utf-8") as f:
            page = f.read()
        if "<script" in page:
            fail("the shipped report contains a script")
        probe = os.path.join(work, "probe.html")
        with open(probe, "w", encoding="utf-8") as f:
            f.write(page.replace("</body>", CHECK_SCRIPT + "</body>"))
        for width in (1280, 390):
            rc, dom, err = chromium(["--enable-logging=stderr", "--v=0",
                                     "--window-size=%d,1600" % width,
                                     "--virtual-time-budget=10000", "--dump-dom",
                                     "file://" + probe], tempfile.mkdtemp(dir=work))
            errors = console_errors(err)
            if errors:
                fail("console errors in the probe page:\n" + "\n".join(errors))
            a = dom.find('<pre id="lk-verdict">')
            b = dom.find(" END", a)
            if a < 0 or b < 0:
                fail("no verdict in the dumped DOM at width %d (exit %d)" % (width, rc))
            verdict = dom[a + len('<pre id="lk-verdict">'):b]
            print("width %d: %s" % (width, verdict))
            if not verdict.startswith("VERDICT OK") or " images=0 " in verdict:
                fail("figures did not decode: " + verdict)
            over = int(verdict.split("overflow=")[1].split()[0])
            if over > 1:
                fail("page overflows horizontally by %d px at width %d" % (over, width))

        # (4) phone-width screenshot.
        phone = os.path.join(work, "phone.png")
        rc, _, err = chromium(["--screenshot=" + phone, "--window-size=390,1400", url],
                              tempfile.mkdtemp(dir=work))
        if rc != 0 or not os.path.exists(phone):
            fail("chromium phone screenshot failed (exit %d): %s" % (rc, err[-2000:]))
        w, h, ncol, ink = png_stats(phone)
        print("phone screenshot %dx%d: %d colours, %.1f%% non-white" % (w, h, ncol, 100 * ink))
        if w != 390 or ncol < 16 or ink < 0.03:
            fail("phone screenshot looks blank")
        keep = os.environ.get("LK_REPORT_SCREENSHOT_PHONE")
        if keep:
            shutil.copyfile(phone, keep)
        print("PASS")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
