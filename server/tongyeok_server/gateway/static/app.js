// The meeting page: pick languages, Start, speak; transcripts and translations side by side.
// Protocol: docs/WEB.md (one WebSocket = one Interpret session; events in proto3 JSON).

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const names = new Intl.DisplayNames([navigator.language || "en"], { type: "language" });
const nameOf = (code) => { try { return `${names.of(code)} (${code})`; } catch { return code; } };
const primary = (code) => code.toLowerCase().split("-")[0];

const state = {
  info: { authRequired: false },
  running: false, ws: null, mic: null, capture: null, player: null,
  sessionId: "", resumeToken: "", lastSeq: 0, stored: false, ended: false, error: null,
  audio: { chunks: [], start: 0, sent: 0 },  // unacknowledged audio, kept for a resume
  flowing: false,  // the server has taken the config (or the resume): audio goes out as it comes
  pendingAudio: null, playAt: {},
  reconnects: 0,  // over the whole meeting
  attempts: 0,  // in a row, since the last socket that worked
  captured: 0,  // bytes of audio the microphone gave during the meeting
};

// What the page has done, read-only: for a person looking in the console, and for the browser tests.
window.tongyeok = Object.freeze({
  get sessionId() { return state.sessionId; },
  get reconnects() { return state.reconnects; },
  get capturedBytes() { return state.captured; },
  get lastSequenceNumber() { return state.lastSeq; },
});

function setStatus(text, kind = "") {
  const el = $("status");
  el.textContent = text;
  el.className = kind;
}

// -- languages -------------------------------------------------------------

function credential() { return $("credential").value.trim(); }
function authHeaders() { return state.info.authRequired ? { Authorization: `Bearer ${credential()}` } : {}; }

function fill(select, codes, wanted, keepFirst) {
  const first = keepFirst ? [...select.options].slice(0, 1) : [];
  select.replaceChildren(...first);
  const all = [...codes];
  if (wanted && !all.some((c) => primary(c) === primary(wanted))) all.push(wanted);
  for (const code of all) select.add(new Option(nameOf(code), code));
  if (wanted) {
    const hit = all.find((c) => c.toLowerCase() === wanted.toLowerCase()) || all.find((c) => primary(c) === primary(wanted));
    select.value = hit;
  }
}

async function loadLanguages() {
  const response = await fetch("/v1/languages", { headers: authHeaders() });
  const body = await response.json();
  if (!response.ok) { setStatus(body.error ? body.error.message : `languages: HTTP ${response.status}`, "error"); return; }
  const sources = body.recognitionLanguageCodes || [];
  const targets = [...new Set((body.translationPairs || []).map((p) => p.targetLanguageCode))];
  const wantSources = params.getAll("source");
  const wantTargets = params.getAll("target");
  fill($("source-1"), sources, wantSources[0] || sources[0], false);
  fill($("source-2"), (body.maxSourceLanguages || 1) > 1 ? sources : [], wantSources[1] || "", true);
  fill($("target"), targets, wantTargets[0] || targets.find((t) => primary(t) !== primary($("source-1").value)), false);
  twoWayChanged();
}

function twoWayChanged() { $("target-label").hidden = Boolean($("source-2").value); }

function languagesChosen() {
  const sources = [$("source-1").value, $("source-2").value].filter(Boolean);
  const wantTargets = params.getAll("target");
  let targets = sources.length > 1 ? [] : [$("target").value];
  if (sources.length > 1 && wantTargets.length) targets = wantTargets;  // a link may name them
  return { sources, targets };
}

// -- the session -------------------------------------------------------------

function sessionConfig(rate) {
  const { sources, targets } = languagesChosen();
  const spoken = targets.length ? targets : sources;
  const config = {
    audioFormat: { encoding: "AUDIO_ENCODING_LINEAR16", sampleRateHertz: rate, channelCount: 1 },
    sourceLanguageCodes: sources,
    targetLanguageCodes: targets,
    interimResults: true,
    storeTranscript: $("record").checked,
    resumption: { enabled: true },
  };
  if ($("speak").checked) {
    config.speechOutput = {
      voices: spoken.map((languageCode) => ({ languageCode })),
      encoding: "SPEECH_ENCODING_LINEAR16",
      sampleRateHertz: 24000,
    };
  }
  if (state.info.simultaneous && $("simultaneous").checked) {
    // Translated while the speaker talks: committed tokens, then the tentative rest greyed (issue 19).
    config.translationOptions = {
      ...(config.translationOptions || {}),
      mode: "INTERPRETATION_MODE_SIMULTANEOUS",
      tentativeTranslations: true,
    };
  }
  return config;
}

async function socketUrl() {
  const url = new URL("/v1/interpret", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  if (state.info.authRequired) {
    const response = await fetch("/v1/tickets", { method: "POST", headers: authHeaders() });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error ? body.error.message : `ticket: HTTP ${response.status}`);
    url.searchParams.set("ticket", body.ticket);
  }
  return url;
}

async function start() {
  if (state.info.authRequired) sessionStorage.setItem("tongyeok-credential", credential());
  $("transcript").replaceChildren();
  $("exports").hidden = true;
  Object.assign(state, {
    sessionId: "", resumeToken: "", lastSeq: 0, stored: false, ended: false, error: null, reconnects: 0, attempts: 0, captured: 0,
  });
  state.audio = { chunks: [], start: 0, sent: 0 };
  setStatus("Starting the microphone…");
  // Made in the click's own turn, so the browser lets them run (autoplay rules).
  const context = new AudioContext({ sampleRate: 16000 });
  state.player = $("speak").checked ? new AudioContext() : null;
  state.mic = await navigator.mediaDevices.getUserMedia({
    audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
  });
  await context.audioWorklet.addModule("/static/capture.js");
  await context.resume();
  const node = new AudioWorkletNode(context, "capture");
  context.createMediaStreamSource(state.mic).connect(node);
  node.connect(context.destination);  // it outputs silence; connected, the graph keeps pulling it
  node.port.onmessage = (e) => sendAudio(e.data);
  state.capture = context;
  state.playAt = {};
  state.running = true;
  $("start").textContent = "Stop";
  $("start").classList.add("stop");
  await connect({ config: sessionConfig(context.sampleRate) });
}

async function connect(first) {
  setStatus(first.resume ? "Reconnecting…" : "Connecting…");
  state.error = null;
  state.pendingAudio = null;
  const ws = new WebSocket(await socketUrl());
  ws.binaryType = "arraybuffer";
  state.ws = ws;
  ws.onopen = () => ws.send(JSON.stringify(first));
  ws.onmessage = (e) => onFrame(e.data);
  ws.onclose = (e) => onClose(ws, e);
}

function sendAudio(buffer) {
  if (!state.running) return;
  state.captured += buffer.byteLength;
  state.audio.chunks.push(buffer);
  const ws = state.ws;
  if (ws && ws.readyState === WebSocket.OPEN && state.flowing) {
    ws.send(buffer);
    state.audio.sent += buffer.byteLength;
  }
}

function stop() {
  state.running = false;
  if (state.mic) state.mic.getTracks().forEach((t) => t.stop());
  if (state.capture) state.capture.close();
  state.mic = state.capture = null;
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify({ end: {} }));
  setStatus("Finishing the last sentence…");
  $("start").textContent = "Start";
  $("start").classList.remove("stop");
}

function onClose(ws, event) {
  if (ws !== state.ws) return;
  state.ws = null;
  state.flowing = false;
  if (event.code === 1000) {
    state.ended = true;
    setStatus("Ended", "");
    if (state.running) stop();
    if (state.stored && state.sessionId) $("exports").hidden = false;
    return;
  }
  const reason = (state.error && state.error.message) || event.reason || "the connection was lost";
  // A broken connection (no close from the server, or the server going away) is resumed while the window lasts.
  const resumable = state.resumeToken && (event.code === 1006 || event.code === 1001 || event.code === 4014);
  if (resumable && !state.ended) reconnect(reason, event.code);
  else giveUp(reason, event.code);
}

// Tries in a row: a phone's network may drop many times in an hour; what gives up is one drop that lasts.
function reconnect(reason, code) {
  if (state.attempts >= 8) { giveUp(reason, code); return; }
  state.attempts += 1;
  state.reconnects += 1;
  setStatus(`Connection lost; reconnecting (${state.attempts})…`, "error");
  const resume = { resumeToken: state.resumeToken, lastSequenceNumber: String(state.lastSeq) };
  setTimeout(() => connect({ resume }).catch((e) => reconnect(e.message, code)), backoffMs(state.attempts));
}

// The one back-off policy (tongyeok_client/backoff.py, Python's reconnects): 0.25 s doubling to 4 s, +-20 %,
// so that the pages a server restart dropped together do not come back in lockstep.
function backoffMs(attempt) {
  return Math.min(4000, 250 * 2 ** (attempt - 1)) * (0.8 + 0.4 * Math.random());
}

function giveUp(reason, code) {
  if (state.running) stop();
  setStatus(`Stopped: ${reason} (${code})`, "error");
}

// -- events ------------------------------------------------------------------

function row(id) {
  let li = document.querySelector(`li[data-utterance="${id}"]`);
  if (!li) {
    li = document.createElement("li");
    li.dataset.utterance = id;
    const said = document.createElement("div");
    said.className = "said";
    const translations = document.createElement("div");
    translations.className = "translations";
    li.append(said, translations);
    $("transcript").append(li);
    li.scrollIntoView({ block: "nearest" });
  }
  return li;
}

function labelled(el, lang, text, cls) {
  el.replaceChildren();
  const tag = document.createElement("span");
  tag.className = "lang";
  tag.textContent = lang;
  el.append(tag, document.createTextNode(text));
  el.dataset.lang = lang;
  el.classList.remove("interim", "final", "tentative", "complete");
  if (cls) el.classList.add(cls);
}

function translation(id, target) {
  const box = row(id).querySelector(".translations");
  let el = box.querySelector(`.translation[data-lang="${target}"]`);
  if (!el) {
    el = document.createElement("div");
    el.className = "translation";
    el.dataset.lang = target;
    el.dataset.text = "";
    box.append(el);
  }
  return el;
}

function onFrame(data) {
  if (typeof data !== "string") { spoken(data); return; }
  const m = JSON.parse(data);
  if (m.error) { state.error = m.error; return; }
  // A piece of speech counts as received with its audio, the next frame: cut between the two, it is sent again.
  if (m.sequenceNumber && !m.translationAudio) state.lastSeq = Math.max(state.lastSeq, Number(m.sequenceNumber));
  if (m.sessionStarted) {
    const s = m.sessionStarted;
    Object.assign(state, { sessionId: s.sessionId, resumeToken: s.resumeToken || "", stored: Boolean(s.transcriptStored) });
    resend(0);  // what the microphone gave while the socket opened
    setStatus("Listening", "live");
  } else if (m.sessionResumed) {
    state.attempts = 0;
    resend(Number(m.sessionResumed.resendFromByte || 0));
    if (state.running) setStatus("Listening", "live");
    else state.ws.send(JSON.stringify({ end: {} }));  // Stop was pressed while the connection was down
  } else if (m.audioAcknowledged) {
    acknowledge(Number(m.audioAcknowledged.acknowledgedBytes || 0));
  } else if (m.resumeTokenUpdate) {
    state.resumeToken = m.resumeTokenUpdate.resumeToken;
  } else if (m.interimTranscript) {
    const t = m.interimTranscript;
    const said = row(t.utteranceId).querySelector(".said");
    if (!said.classList.contains("final")) labelled(said, t.languageCode, t.text, "interim");
  } else if (m.finalTranscript) {
    const t = m.finalTranscript;
    labelled(row(t.utteranceId).querySelector(".said"), t.languageCode, t.text, "final");
  } else if (m.translationToken) {
    const t = m.translationToken;
    const el = translation(t.utteranceId, t.targetLanguageCode);
    el.dataset.text += t.text;
    labelled(el, t.targetLanguageCode, el.dataset.text, "");
  } else if (m.translationComplete) {
    const t = m.translationComplete;
    const el = translation(t.utteranceId, t.targetLanguageCode);
    el.dataset.text = t.text;
    labelled(el, t.targetLanguageCode, t.text, "complete");
  } else if (m.translationReset) {
    const t = m.translationReset;
    const el = translation(t.utteranceId, t.targetLanguageCode);
    el.dataset.text = "";
    labelled(el, t.targetLanguageCode, "", "");
  } else if (m.translationAudio) {
    state.pendingAudio = m;  // its bytes are the next (binary) frame
  } else if (m.notice) {
    const li = row(m.notice.utteranceId || `notice-${state.lastSeq}`);
    const note = document.createElement("div");
    note.className = "notice";
    note.textContent = m.notice.message;
    li.append(note);
  } else {
    tentative(m);
  }
}

// Simultaneous mode (issue 19): the committed text of a sentence still being said, then its tentative rest greyed.
function tentative(m) {
  const t = m.translationTentative;
  if (!t || !t.utteranceId || !t.targetLanguageCode) return;
  const el = translation(t.utteranceId, t.targetLanguageCode);
  if (el.classList.contains("complete")) return;
  labelled(el, t.targetLanguageCode, el.dataset.text, "");
  const rest = document.createElement("span");
  rest.className = "tentative";
  rest.textContent = t.text || "";
  el.append(rest);
}

// -- audio kept for a resume -------------------------------------------------------

function acknowledge(upTo) {
  const a = state.audio;
  while (a.chunks.length && a.start + a.chunks[0].byteLength <= upTo) a.start += a.chunks.shift().byteLength;
}

function resend(from) {
  const a = state.audio;
  state.flowing = true;
  acknowledge(from);
  let offset = a.start;
  for (const chunk of a.chunks) {
    const end = offset + chunk.byteLength;
    if (end > from) state.ws.send(offset >= from ? chunk : chunk.slice(from - offset));
    offset = end;
  }
  a.sent = offset;
}

// -- speech -----------------------------------------------------------------

function spoken(bytes) {
  const m = state.pendingAudio;
  state.pendingAudio = null;
  if (!m) return;
  state.lastSeq = Math.max(state.lastSeq, Number(m.sequenceNumber || 0));
  play(m.translationAudio, bytes);
}

function play(meta, bytes) {
  const ctx = state.player;
  if (!ctx || !meta || meta.encoding !== "SPEECH_ENCODING_LINEAR16") return;
  const pcm = new Int16Array(bytes);
  const buffer = ctx.createBuffer(1, pcm.length, meta.sampleRateHertz);
  const channel = buffer.getChannelData(0);
  for (let i = 0; i < pcm.length; i++) channel[i] = pcm[i] / 0x8000;
  const source = ctx.createBufferSource();
  source.buffer = buffer;
  source.connect(ctx.destination);
  const lang = meta.targetLanguageCode;
  const at = Math.max(ctx.currentTime, state.playAt[lang] || 0);
  source.start(at);
  state.playAt[lang] = at + buffer.duration;
}

// -- export -----------------------------------------------------------------

async function download(format) {
  const response = await fetch(`/v1/sessions/${state.sessionId}/export?format=${format}`, { headers: authHeaders() });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    setStatus(body.error ? body.error.message : `export: HTTP ${response.status}`, "error");
    return;
  }
  const name = (response.headers.get("Content-Disposition") || "").match(/filename="([^"]+)"/);
  const a = document.createElement("a");
  a.href = URL.createObjectURL(await response.blob());
  a.download = name ? name[1] : `${state.sessionId}.${format === "markdown" ? "md" : format}`;
  a.click();
  URL.revokeObjectURL(a.href);
}

// -- wiring -----------------------------------------------------------------

async function init() {
  state.info = await (await fetch("/v1/info")).json();
  $("simultaneous-label").hidden = !state.info.simultaneous;
  if (state.info.authRequired) {
    $("credential-row").hidden = false;
    $("credential").value = sessionStorage.getItem("tongyeok-credential") || "";
    $("credential").addEventListener("change", () => loadLanguages().catch((e) => setStatus(e.message, "error")));
    if (!credential()) { setStatus("Enter your API key or token"); return; }
  }
  await loadLanguages();
}

$("setup").addEventListener("submit", (e) => {
  e.preventDefault();
  if (state.running) stop();
  else start().catch((err) => { setStatus(err.message, "error"); if (state.running) stop(); setStatus(err.message, "error"); });
});
$("source-2").addEventListener("change", twoWayChanged);
$("export-srt").addEventListener("click", (e) => { e.preventDefault(); download("srt"); });
$("export-md").addEventListener("click", (e) => { e.preventDefault(); download("markdown"); });
init().catch((e) => setStatus(e.message, "error"));
