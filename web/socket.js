// The notebook's WebSocket (API.md §13): frames {type, seq, ts, payload} both ways.
// Reconnects by itself with a growing pause; says when the session is gone (a restarted server),
// so the page can open the notebook again and get a new session.

export class NotebookSocket {
  /**
   * @param {string} sessionId
   * @param {(type: string, payload: object) => void} onFrame
   * @param {(state: "connecting"|"open"|"closed"|"gone") => void} onState
   */
  constructor(sessionId, onFrame, onState) {
    this.sessionId = sessionId;
    this.onFrame = onFrame;
    this.onState = onState;
    this.ws = null;
    this.retry = 250;
    this.stopped = false;
    this.connect();
  }

  connect() {
    if (this.stopped) return;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/v1/notebooks/ws/${this.sessionId}`);
    this.ws = ws;
    this.onState("connecting");
    ws.onopen = () => {
      this.retry = 250;
      this.onState("open");
    };
    ws.onmessage = (ev) => {
      let frame;
      try {
        frame = JSON.parse(ev.data);
      } catch {
        return;
      }
      this.onFrame(frame.type, frame.payload || {});
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws || this.stopped) return;
      // 1008: the server does not know this session (restarted, closed, evicted).
      if (ev.code === 1008 || ev.code === 4401) {
        this.onState(ev.code === 4401 ? "unauthorized" : "gone");
        return;
      }
      this.onState("closed");
      setTimeout(() => this.connect(), this.retry);
      this.retry = Math.min(this.retry * 2, 5000);
    };
  }

  get open() {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  /** Send a frame; false when the socket is not open (the caller keeps what it meant to send). */
  send(type, payload = {}) {
    if (!this.open) return false;
    this.ws.send(JSON.stringify({ type, payload }));
    return true;
  }

  close() {
    this.stopped = true;
    this.ws?.close();
  }
}
