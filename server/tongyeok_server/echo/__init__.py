"""Echo suppression: a session never interprets its own spoken translations again.

A session that speaks (``speech_output``) knows exactly what it said, when it
sent it, in which language, and the audio itself. When the caller's
microphone hears that speech (a phone on the table, no headphones), the
server would otherwise recognise its own voice, translate it back and speak
it again. Two layers, one per session (``guard.EchoGuard``):

- **On the signal** (before the recogniser): the session's speech, decoded to
  the caller's rate, is laid on the timeline of the caller's audio where it
  could start playing (``playout.PlayoutTrack``); each utterance's playback
  delay is found by cross-correlation (``align.find_delay``) and WebRTC's
  echo canceller (AEC3, ``aec.Canceller``) removes it, so a person speaking
  over its end is still heard; what it leaves of the echo is brought down
  (``residual.ResidualGate``). Outside the playback windows the audio only
  goes through the canceller's constant delay (``latency_s``, taken off the
  recogniser's offsets by the session).
- **On the words** (at each final): a final whose words are, in order, a
  translation the session spoke in that language within its playback
  window (``words.SpokenWords``), or whose audio was mostly echo
  (``frames.FrameLog``), is echo: the session marks it (``Final.echo_of``)
  and never translates, speaks or records it.
- **Before commitment** (simultaneous mode, at each interim): the same two
  rules over the interim's span and stable text (``guard.judge``), so that
  nothing of the session's own speech is committed before its final; a
  verdict that cannot be made yet holds commitment (``base.Verdict``).

``extension.EchoExtension`` attaches a guard to every session that speaks
(unless the session or the server turns it off).
"""
