"""The lesson room in Chromium with fake media devices: the pre-join check (camera preview, level
meter, device lists), joining, and the exact music-mode options handed to livekit-client.

The real livekit-client bundle is loaded, with a spy appended: ``Room`` is the real class
extended to record its options, ``connect`` resolves without a server and the local participant's
methods record their arguments, so the test sees exactly what our module hands to the library.
The application runs with LiveKit settings (a server on its own port, with video configured);
there is no LiveKit server, so the room's creation fails and is logged, and the token is issued.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from playwright.sync_api import Browser, BrowserContext, expect

from tests.e2e.server import CHROMIUM, ROOT, LiveServer, start_server
from tests.e2e.support import PASSWORD, assert_accessible, log_in, run_sync
from tests.lessons.conftest import API_KEY, API_SECRET, make_lesson

pytestmark = pytest.mark.e2e

# Appended to the real bundle (served through page.route), so it runs before our module.
SPY = """
;(() => {
  window.__lk = { calls: [] };
  const record = (name, args) => window.__lk.calls.push({ name, args: JSON.parse(JSON.stringify(args || [])) });
  const real = window.LivekitClient;
  const P = real.AudioPresets;
  const presetName = (preset) => Object.keys(P).find((k) => P[k] === preset) || null;
  class SpyRoom extends real.Room {
    constructor(options) {
      super(options);
      record("Room", [options, presetName(options && options.publishDefaults && options.publishDefaults.audioPreset)]);
      this.connect = async (url, token) => {
        record("connect", [url, typeof token === "string" && token.split(".").length === 3]);
      };
      this.disconnect = async () => record("disconnect", []);
      const lp = this.localParticipant;
      lp.setMicrophoneEnabled = async (enabled, capture, publish) => {
        record("setMicrophoneEnabled", [enabled, capture, publish, presetName(publish && publish.audioPreset)]);
      };
      lp.setCameraEnabled = async (enabled, options) => record("setCameraEnabled", [enabled, options]);
      lp.getTrackPublication = () => undefined;
    }
  }
  window.LivekitClient = Object.freeze({ ...real, Room: SpyRoom });
})();
"""


def wait_until(page, predicate: str, timeout: float = 10.0) -> None:
    """Poll a predicate with evaluate (wait_for_function evaluates strings, which the CSP forbids)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(predicate):
        assert time.monotonic() < deadline, f"timed out waiting for {predicate}"
        page.wait_for_timeout(100)


@pytest.fixture(scope="module")
def video_server(migrated_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    env = {
        **os.environ,
        "LIVEKIT_URL": "http://127.0.0.1:9",  # nothing listens: room creation fails fast and is logged
        "LIVEKIT_API_KEY": API_KEY,
        "LIVEKIT_API_SECRET": API_SECRET,
    }
    server = start_server(env, tmp_path_factory.mktemp("e2e-video") / "server.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def media_browser(browser: Browser) -> Iterator[Browser]:
    chromium = browser.browser_type.launch(
        executable_path=CHROMIUM,
        args=[
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            "--autoplay-policy=no-user-gesture-required",
        ],
    )
    yield chromium
    chromium.close()


@pytest.fixture
def context(media_browser: Browser, video_server: LiveServer) -> Iterator[BrowserContext]:
    ctx = media_browser.new_context(base_url=video_server.url, locale="en-US", timezone_id="Europe/Berlin")
    ctx.set_default_timeout(10_000)
    ctx.grant_permissions(["camera", "microphone"], origin=video_server.url)
    yield ctx
    ctx.close()


def test_prejoin_check_and_music_mode_options_reach_livekit_client(context, video_server):
    lesson = run_sync(lambda: make_lesson(starts_in=timedelta(minutes=2), minutes=45))
    page = context.new_page()
    bundle = (ROOT / "static" / "vendor" / "livekit-client.umd.js").read_text()
    page.route(
        "**/static/vendor/livekit-client.umd.js",
        lambda route: route.fulfill(body=bundle + SPY, content_type="text/javascript"),
    )
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    assert log_in(page, lesson.student.email, PASSWORD).ok
    page.goto(f"/lessons/{lesson.booking_id}/room")

    # pre-join: preview from the fake camera, a moving level meter, device lists, headphone advice
    expect(page.get_by_text("Please wear headphones.")).to_be_visible()
    wait_until(page, "() => document.getElementById('preview').videoWidth > 0")
    wait_until(page, "() => document.getElementById('mic-level').value > 0")
    assert page.locator("#camera-select option").count() >= 1
    assert page.locator("#mic-select option").count() >= 1
    assert page.locator("#second-camera-select option").count() >= 2  # "None" and the camera
    expect(page.locator("#music-mode")).to_be_checked()
    assert_accessible(page)

    page.locator("#join-button").click()
    expect(page.locator("#call")).to_be_visible()
    expect(page.locator("#room-status")).to_have_text("Connected.")
    calls = page.evaluate("window.__lk.calls")
    connect = next(c for c in calls if c["name"] == "connect")
    assert connect["args"] == ["ws://127.0.0.1:9", True]
    mic = [c["args"] for c in calls if c["name"] == "setMicrophoneEnabled"]
    device = page.locator("#mic-select").input_value()
    expected_capture = {
        "echoCancellation": False,
        "noiseSuppression": False,
        "autoGainControl": False,
        "voiceIsolation": False,
        "channelCount": 2,
        **({"deviceId": device} if device else {}),
    }
    enabled, capture, publish, preset = mic[0]
    assert enabled is True
    assert capture == expected_capture
    assert preset == "musicHighQualityStereo"
    assert publish["audioPreset"]["maxBitrate"] >= 128_000  # the real library's preset
    assert {k: v for k, v in publish.items() if k != "audioPreset"} == {"dtx": False, "red": True, "forceStereo": True}
    room_options = page.evaluate("(() => { const r = new LivekitClient.Room(); return null; })()")
    assert room_options is None
    (room_options, room_preset), *_ = [c["args"] for c in calls if c["name"] == "Room"]
    assert room_options["audioCaptureDefaults"] == expected_capture and room_preset == "musicHighQualityStereo"
    assert room_options["publishDefaults"]["dtx"] is False and room_options["publishDefaults"]["forceStereo"] is True
    camera = [c["args"] for c in calls if c["name"] == "setCameraEnabled"]
    assert camera and camera[0][0] is True
    assert_accessible(page)

    # speech mode: back to livekit-client's defaults
    page.locator("#toggle-music").click()
    expect(page.locator("#toggle-music")).to_have_attribute("aria-pressed", "false")
    expect(page.locator("#room-status")).to_have_text("Speech mode is on.")
    calls = page.evaluate("window.__lk.calls")
    enabled, capture, publish, preset = [c["args"] for c in calls if c["name"] == "setMicrophoneEnabled"][-1]
    assert enabled is True
    assert {k: v for k, v in capture.items() if k != "deviceId"} == {
        "echoCancellation": True,
        "noiseSuppression": True,
        "autoGainControl": True,
        "voiceIsolation": True,
        "channelCount": 1,
    }
    assert preset == "music"
    assert {k: v for k, v in publish.items() if k != "audioPreset"} == {"dtx": True, "red": True, "forceStereo": False}

    # and back to music mode
    page.locator("#toggle-music").click()
    calls = page.evaluate("window.__lk.calls")
    _enabled, capture, publish, preset = [c["args"] for c in calls if c["name"] == "setMicrophoneEnabled"][-1]
    assert capture == expected_capture and preset == "musicHighQualityStereo"
    assert errors == []


def test_room_is_refused_outside_the_window_and_to_strangers(context, video_server):
    lesson = run_sync(lambda: make_lesson(starts_in=timedelta(hours=2), minutes=45))
    page = context.new_page()
    assert log_in(page, lesson.tutor.email, PASSWORD).ok
    page.goto(f"/lessons/{lesson.booking_id}/room")
    expect(page.locator("main")).to_contain_text("The lesson room opens at")
    assert page.locator("#join-button").count() == 0
    assert_accessible(page)
    status = page.evaluate(
        """async (url) => (await fetch(url, {method: 'POST', headers: {
             'x-csrftoken': document.querySelector('input[name=_csrf_token]').value,
             accept: 'application/json'}})).status""",
        f"/lessons/{lesson.booking_id}/token",
    )
    assert status == 403
