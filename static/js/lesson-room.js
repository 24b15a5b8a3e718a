/* The lesson room on livekit-client (UMD build, global `LivekitClient`, from static/vendor).
 *
 * Pre-join: camera preview, microphone level meter, device choice, a second camera, music mode.
 * In the call: microphone/camera toggles, screen share, second camera as an extra video track,
 * text chat over data messages, connection quality, reconnect handling, a timer to the end.
 *
 * Music mode (the default for instrument lessons) captures without echo cancellation, noise
 * suppression, auto gain control or voice isolation, in two channels, and publishes with the
 * high-quality stereo music preset (128 kbps), DTX off, RED on and forced stereo. Speech mode
 * goes back to livekit-client's defaults. The options are exported as `window.CadenzaRoom` for
 * the browser test and for debugging.
 */
(function () {
  "use strict";

  var root = document.getElementById("lesson-room");
  var LK = window.LivekitClient;
  if (!root || !LK) return;

  var strings = document.getElementById("room-strings").dataset;
  var statusEl = document.getElementById("room-status");
  var preview = document.getElementById("preview");
  var meter = document.getElementById("mic-level");
  var cameraSelect = document.getElementById("camera-select");
  var micSelect = document.getElementById("mic-select");
  var secondSelect = document.getElementById("second-camera-select");
  var musicBox = document.getElementById("music-mode");
  var joinButton = document.getElementById("join-button");
  var prejoin = document.getElementById("prejoin");
  var call = document.getElementById("call");
  var remoteMedia = document.getElementById("remote-media");
  var localMedia = document.getElementById("local-media");
  var chatLog = document.getElementById("chat-log");
  var chatForm = document.getElementById("chat-form");
  var chatInput = document.getElementById("chat-input");
  var qualityEl = document.getElementById("connection-quality");
  var timerEl = document.getElementById("room-timer");
  var endsAt = new Date(root.dataset.endsAt);

  var musicMode = root.dataset.musicMode === "on";
  var previewStream = null;
  var audioContext = null;
  var meterFrame = 0;
  var room = null;
  var secondTrack = null;
  var leaving = false;
  var encoder = new TextEncoder();
  var decoder = new TextDecoder();

  // ---- the audio options handed to livekit-client ------------------------------------------

  function musicCapture() {
    return {
      echoCancellation: false,
      noiseSuppression: false,
      autoGainControl: false,
      voiceIsolation: false,
      channelCount: 2,
    };
  }

  function speechCapture() {
    // livekit-client's audioDefaults
    return {
      echoCancellation: true,
      noiseSuppression: true,
      autoGainControl: true,
      voiceIsolation: true,
      channelCount: 1,
    };
  }

  function musicPublish() {
    return { audioPreset: LK.AudioPresets.musicHighQualityStereo, dtx: false, red: true, forceStereo: true };
  }

  function speechPublish() {
    // livekit-client's publishDefaults for audio
    return { audioPreset: LK.AudioPresets.music, dtx: true, red: true, forceStereo: false };
  }

  function captureOptions() {
    var options = musicMode ? musicCapture() : speechCapture();
    if (micSelect.value) options.deviceId = micSelect.value;
    return options;
  }

  function publishOptions() {
    return musicMode ? musicPublish() : speechPublish();
  }

  window.CadenzaRoom = {
    musicCapture: musicCapture,
    musicPublish: musicPublish,
    speechCapture: speechCapture,
    speechPublish: speechPublish,
  };

  // ---- helpers -------------------------------------------------------------------------------

  function say(text) {
    statusEl.textContent = text;
  }

  function fill(template, name) {
    return template.replace("{name}", name);
  }

  function setPressed(id, on) {
    document.getElementById(id).setAttribute("aria-pressed", on ? "true" : "false");
  }

  // ---- pre-join: preview, meter, devices ----------------------------------------------------

  function stopPreview() {
    if (meterFrame) cancelAnimationFrame(meterFrame);
    meterFrame = 0;
    if (previewStream) previewStream.getTracks().forEach(function (t) { t.stop(); });
    previewStream = null;
    if (audioContext) audioContext.close();
    audioContext = null;
  }

  function startMeter(stream) {
    if (!stream.getAudioTracks().length || !window.AudioContext) return;
    audioContext = new AudioContext();
    var source = audioContext.createMediaStreamSource(stream);
    var analyser = audioContext.createAnalyser();
    analyser.fftSize = 512;
    source.connect(analyser);
    var data = new Float32Array(analyser.fftSize);
    function tick() {
      analyser.getFloatTimeDomainData(data);
      var sum = 0;
      for (var i = 0; i < data.length; i++) sum += data[i] * data[i];
      var level = Math.min(1, Math.sqrt(sum / data.length) * 4);
      meter.value = level;
      meter.textContent = Math.round(level * 100) + "%";
      meterFrame = requestAnimationFrame(tick);
    }
    tick();
  }

  function fillSelect(select, devices, keepNone) {
    var current = select.value;
    while (select.options.length > (keepNone ? 1 : 0)) select.remove(select.options.length - 1);
    devices.forEach(function (d, i) {
      var option = document.createElement("option");
      option.value = d.deviceId;
      option.textContent = d.label || (d.kind === "audioinput" ? strings.microphone : strings.camera) + " " + (i + 1);
      select.appendChild(option);
    });
    if (current) select.value = current;
  }

  async function listDevices() {
    var devices = await navigator.mediaDevices.enumerateDevices();
    var cams = devices.filter(function (d) { return d.kind === "videoinput"; });
    var mics = devices.filter(function (d) { return d.kind === "audioinput"; });
    fillSelect(cameraSelect, cams, false);
    fillSelect(micSelect, mics, false);
    fillSelect(secondSelect, cams, true);
  }

  async function startPreview() {
    stopPreview();
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      say(strings.noDevices);
      return;
    }
    var audio = musicMode ? musicCapture() : speechCapture();
    if (micSelect.value) audio.deviceId = { exact: micSelect.value };
    var video = cameraSelect.value ? { deviceId: { exact: cameraSelect.value } } : true;
    try {
      previewStream = await navigator.mediaDevices.getUserMedia({ audio: audio, video: video });
    } catch (err) {
      say(strings.noDevices);
      return;
    }
    preview.srcObject = previewStream;
    startMeter(previewStream);
    await listDevices();
  }

  // ---- the call -------------------------------------------------------------------------------

  async function fetchToken() {
    var response = await fetch(root.dataset.tokenUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "x-csrftoken": root.dataset.csrf, accept: "application/json" },
    });
    var body = await response.json();
    if (!response.ok) throw new Error(body.detail || strings.failed);
    return body;
  }

  function attachTrack(track, participant, container) {
    var element = track.attach();
    element.dataset.sid = track.sid || "";
    if (track.kind === "video") {
      element.setAttribute("aria-label", participant ? participant.name || participant.identity : strings.me);
      element.playsInline = true;
    }
    container.appendChild(element);
  }

  function detachTrack(track) {
    track.detach().forEach(function (el) { el.remove(); });
  }

  function addChat(who, text) {
    var item = document.createElement("li");
    var name = document.createElement("strong");
    name.textContent = who + ": ";
    item.appendChild(name);
    item.appendChild(document.createTextNode(text));
    chatLog.appendChild(item);
    chatLog.scrollTop = chatLog.scrollHeight;
  }

  function wire(r) {
    var E = LK.RoomEvent;
    r.on(E.TrackSubscribed, function (track, publication, participant) {
      attachTrack(track, participant, remoteMedia);
    });
    r.on(E.TrackUnsubscribed, function (track) { detachTrack(track); });
    r.on(E.LocalTrackPublished, function (publication) {
      if (publication.track && publication.track.kind === "video") attachTrack(publication.track, null, localMedia);
    });
    r.on(E.LocalTrackUnpublished, function (publication) {
      if (publication.track) detachTrack(publication.track);
    });
    r.on(E.ParticipantConnected, function (p) { say(fill(strings.joined, p.name || p.identity)); });
    r.on(E.ParticipantDisconnected, function (p) { say(fill(strings.left, p.name || p.identity)); });
    r.on(E.Reconnecting, function () { say(strings.reconnecting); });
    r.on(E.Reconnected, function () { say(strings.reconnected); });
    r.on(E.Disconnected, function () {
      say(leaving ? strings.disconnected : strings.failed);
      endCall();
    });
    r.on(E.ConnectionQualityChanged, function (quality, participant) {
      if (participant && participant.isLocal === false) return;
      qualityEl.textContent = strings["quality" + String(quality).charAt(0).toUpperCase() + String(quality).slice(1)] || quality;
    });
    r.on(E.DataReceived, function (payload, participant, kind, topic) {
      if (topic !== "chat") return;
      try {
        var message = JSON.parse(decoder.decode(payload));
        addChat(participant ? participant.name || participant.identity : "?", String(message.text || ""));
      } catch (err) { /* not a chat message */ }
    });
  }

  async function join() {
    joinButton.disabled = true;
    say(strings.connecting);
    var camId = cameraSelect.value;
    stopPreview();
    try {
      var grant = await fetchToken();
      room = new LK.Room({
        adaptiveStream: true,
        dynacast: true,
        audioCaptureDefaults: captureOptions(),
        publishDefaults: publishOptions(),
      });
      wire(room);
      await room.connect(grant.url, grant.token);
      await room.localParticipant.setMicrophoneEnabled(true, captureOptions(), publishOptions());
      await room.localParticipant.setCameraEnabled(true, camId ? { deviceId: camId } : {});
      prejoin.hidden = true;
      call.hidden = false;
      setPressed("toggle-music", musicMode);
      say(strings.connected);
      startTimer();
      if (secondSelect.value) await toggleSecondCamera();
    } catch (err) {
      say(err && err.message ? err.message : strings.failed);
      joinButton.disabled = false;
      if (room) { try { await room.disconnect(); } catch (e) { /* ignore */ } }
      room = null;
    }
  }

  function endCall() {
    if (secondTrack) { secondTrack.stop(); secondTrack = null; }
    remoteMedia.textContent = "";
    localMedia.textContent = "";
    call.hidden = true;
    prejoin.hidden = false;
    joinButton.disabled = false;
    room = null;
    leaving = false;
    startPreview();
  }

  async function toggleMic() {
    var on = !room.localParticipant.isMicrophoneEnabled;
    await room.localParticipant.setMicrophoneEnabled(on, captureOptions(), publishOptions());
    setPressed("toggle-mic", on);
  }

  async function toggleCamera() {
    var on = !room.localParticipant.isCameraEnabled;
    await room.localParticipant.setCameraEnabled(on);
    setPressed("toggle-camera", on);
  }

  async function toggleScreen() {
    var on = !room.localParticipant.isScreenShareEnabled;
    await room.localParticipant.setScreenShareEnabled(on, { audio: true });
    setPressed("toggle-screen", on);
  }

  async function toggleSecondCamera() {
    if (secondTrack) {
      await room.localParticipant.unpublishTrack(secondTrack);
      secondTrack.stop();
      secondTrack = null;
      setPressed("toggle-second-camera", false);
      return;
    }
    var deviceId = secondSelect.value;
    if (!deviceId) return;
    secondTrack = await LK.createLocalVideoTrack({ deviceId: deviceId, resolution: LK.VideoPresets.h720.resolution });
    await room.localParticipant.publishTrack(secondTrack, { name: "second-camera", source: LK.Track.Source.Camera });
    setPressed("toggle-second-camera", true);
  }

  async function toggleMusic() {
    musicMode = !musicMode;
    musicBox.checked = musicMode;
    setPressed("toggle-music", musicMode);
    var publication = room.localParticipant.getTrackPublication(LK.Track.Source.Microphone);
    if (publication && publication.track) await room.localParticipant.unpublishTrack(publication.track);
    await room.localParticipant.setMicrophoneEnabled(true, captureOptions(), publishOptions());
    setPressed("toggle-mic", true);
    say(musicMode ? strings.musicOn : strings.musicOff);
  }

  async function leave() {
    leaving = true;
    if (room) await room.disconnect();
  }

  function startTimer() {
    function tick() {
      var left = Math.max(0, Math.floor((endsAt.getTime() - Date.now()) / 1000));
      var minutes = Math.floor(left / 60);
      var seconds = left % 60;
      timerEl.textContent = minutes + ":" + (seconds < 10 ? "0" : "") + seconds;
    }
    tick();
    setInterval(tick, 1000);
  }

  function guard(fn) {
    return function (event) {
      if (event) event.preventDefault();
      if (!room && fn !== join) return;
      fn().catch(function (err) { say(err && err.message ? err.message : strings.failed); });
    };
  }

  joinButton.addEventListener("click", guard(join));
  document.getElementById("leave-button").addEventListener("click", guard(leave));
  document.getElementById("toggle-mic").addEventListener("click", guard(toggleMic));
  document.getElementById("toggle-camera").addEventListener("click", guard(toggleCamera));
  document.getElementById("toggle-screen").addEventListener("click", guard(toggleScreen));
  document.getElementById("toggle-second-camera").addEventListener("click", guard(toggleSecondCamera));
  document.getElementById("toggle-music").addEventListener("click", guard(toggleMusic));
  chatForm.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = chatInput.value.trim();
    if (!room || !text) return;
    room.localParticipant
      .publishData(encoder.encode(JSON.stringify({ text: text })), { reliable: true, topic: "chat" })
      .then(function () { addChat(strings.me, text); chatInput.value = ""; })
      .catch(function () { say(strings.failed); });
  });
  musicBox.addEventListener("change", function () {
    musicMode = musicBox.checked;
    say(musicMode ? strings.musicOn : strings.musicOff);
    startPreview();
  });
  cameraSelect.addEventListener("change", startPreview);
  micSelect.addEventListener("change", startPreview);
  startPreview();
})();
