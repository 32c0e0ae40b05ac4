// Records every RTCPeerConnection and WebSocket the page creates.
//
// This module must be evaluated before livekit-client (page.ts imports it
// first; ES module imports run in order): webrtc-adapter and the SDK capture
// the constructors when they load, so the wrappers have to be in place by
// then. Recording at the constructor is independent of the SDK's internals
// (RTCEngine.pcManager, SignalClient.ws), which change between releases.

/** Every RTCPeerConnection created by this page, closed ones included. */
export const peerConnections: RTCPeerConnection[] = [];

/** Every WebSocket created by this page, closed ones included. */
export const webSockets: WebSocket[] = [];

declare global {
  interface Window {
    __stoaSpyInstalled?: boolean;
  }
}

if (!window.__stoaSpyInstalled) {
  window.__stoaSpyInstalled = true;

  const NativePC = window.RTCPeerConnection;
  class RecordedPeerConnection extends NativePC {
    constructor(config?: RTCConfiguration) {
      super(config);
      peerConnections.push(this);
    }
  }
  window.RTCPeerConnection = RecordedPeerConnection;

  const NativeWS = window.WebSocket;
  class RecordedWebSocket extends NativeWS {
    constructor(url: string | URL, protocols?: string | string[]) {
      super(url, protocols);
      webSockets.push(this);
    }
  }
  window.WebSocket = RecordedWebSocket;
}
