// Passkeys, as progressive enhancement: forms marked data-passkey stay hidden unless this
// browser has WebAuthn; every other way to sign in works without JavaScript.
(function () {
  'use strict';
  if (!window.PublicKeyCredential || !navigator.credentials) return;

  function fromB64url(s) {
    s = s.replace(/-/g, '+').replace(/_/g, '/');
    while (s.length % 4) s += '=';
    return Uint8Array.from(atob(s), function (c) { return c.charCodeAt(0); }).buffer;
  }
  function toB64url(buf) {
    var bytes = new Uint8Array(buf);
    var s = '';
    for (var i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
    return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }
  function creationOptions(o) {
    var pk = o.publicKey;
    pk.challenge = fromB64url(pk.challenge);
    pk.user.id = fromB64url(pk.user.id);
    (pk.excludeCredentials || []).forEach(function (c) { c.id = fromB64url(c.id); });
    return pk;
  }
  function requestOptions(o) {
    var pk = o.publicKey;
    pk.challenge = fromB64url(pk.challenge);
    (pk.allowCredentials || []).forEach(function (c) { c.id = fromB64url(c.id); });
    return pk;
  }
  function registration(c) {
    return {
      id: c.id, rawId: toB64url(c.rawId), type: c.type, extensions: {},
      response: {
        attestationObject: toB64url(c.response.attestationObject),
        clientDataJSON: toB64url(c.response.clientDataJSON),
        transports: c.response.getTransports ? c.response.getTransports() : undefined
      }
    };
  }
  function assertion(c) {
    return {
      id: c.id, rawId: toB64url(c.rawId), type: c.type, extensions: {},
      response: {
        authenticatorData: toB64url(c.response.authenticatorData),
        clientDataJSON: toB64url(c.response.clientDataJSON),
        signature: toB64url(c.response.signature),
        userHandle: c.response.userHandle ? toB64url(c.response.userHandle) : null
      }
    };
  }

  document.querySelectorAll('form[data-passkey]').forEach(function (form) {
    form.hidden = false;
    form.addEventListener('submit', function (event) {
      event.preventDefault();
      var status = form.querySelector('[data-passkey-status]');
      var body = new URLSearchParams();
      body.set('csrf', form.elements.csrf.value);
      if (form.elements.challenge) body.set('challenge', form.elements.challenge.value);
      fetch(form.dataset.options, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: body
      })
        .then(function (r) {
          if (!r.ok) throw new Error('the server answered ' + r.status);
          return r.json();
        })
        .then(function (got) {
          if (got.token && form.elements.token) form.elements.token.value = got.token;
          if (form.dataset.passkey === 'register') {
            return navigator.credentials.create({ publicKey: creationOptions(got.options) }).then(registration);
          }
          return navigator.credentials.get({ publicKey: requestOptions(got.options) }).then(assertion);
        })
        .then(function (credential) {
          form.querySelector('[data-passkey-credential]').value = JSON.stringify(credential);
          form.submit();
        })
        .catch(function (err) {
          if (!status) return;
          // The words come from the page (the server's text catalogue); {reason} is the browser's.
          var reason = String(err && err.message ? err.message : err);
          status.textContent = (status.getAttribute('data-says-failed') || '{reason}').replace('{reason}', reason);
        });
    });
  });
})();
