// Password fields, as progressive enhancement. Without this script every form works the same;
// with it:
//  - every password field gets a "Show password" button (type=button; its words say what it
//    will do, as GOV.UK's password input does, so it has no aria-pressed: a pressed button
//    whose name changes is announced as "Hide password, pressed"), and a
//    shown password goes back to type=password before its form is submitted, so password
//    managers see a password field;
//  - a list of rules marked data-checklist becomes a checklist that follows what is typed.
//    The server describes each rule in data attributes (data-check, data-value) from the
//    active policy, so this script knows no policy of its own; a rule it cannot check here is
//    marked "checked when you submit". The words come from data attributes the server
//    renders from its text catalogue.
(function () {
  'use strict';

  var body = document.body;

  // --- Show / hide -------------------------------------------------------------------------

  function addReveal(input) {
    if (!input.id) return;
    var show = body.getAttribute('data-show-password') || 'Show password';
    var hide = body.getAttribute('data-hide-password') || 'Hide password';
    var button = document.createElement('button');
    button.type = 'button';
    button.className = 'reveal';
    button.setAttribute('aria-controls', input.id);
    function set(visible) {
      input.type = visible ? 'text' : 'password';
      button.textContent = visible ? hide : show;
    }
    set(false);
    button.addEventListener('click', function () {
      set(input.type === 'password');
    });
    input.insertAdjacentElement('afterend', button);
    if (input.form) {
      // Capture phase, so it runs before any other submit handler and before the browser
      // reads the form: the field is a password field again when the form leaves the page.
      input.form.addEventListener('submit', function () { set(false); }, true);
    }
  }

  Array.prototype.forEach.call(document.querySelectorAll('input[type=password]'), addReveal);

  // --- The checklist -----------------------------------------------------------------------

  // The same character classes as the policy in portcullis-core (char::is_alphabetic,
  // is_uppercase, is_numeric; a symbol is printable and neither of those nor white space).
  var CLASSES = {
    letter: /\p{Alphabetic}/u,
    capital: /\p{Uppercase}/u,
    digit: /\p{N}/u,
    symbol: /[^\p{Alphabetic}\p{N}\p{White_Space}\p{Cc}]/u
  };
  var USER_ID = /^[A-Za-z0-9._@-]{6,32}$/;
  var ANNOUNCE_AFTER_MS = 1200;

  function fill(text, values) {
    return text.replace(/\{([a-z_]+)\}/g, function (all, name) {
      return Object.prototype.hasOwnProperty.call(values, name) ? values[name] : all;
    });
  }

  function enhanceChecklist(list) {
    var input = document.querySelector('input[aria-describedby~="' + list.id + '"]');
    if (!input) return;
    var says = function (name) { return list.getAttribute('data-says-' + name) || ''; };
    var userIdField = list.getAttribute('data-user-id-field');
    userIdField = userIdField ? document.getElementById(userIdField) : null;
    var knownUserId = list.getAttribute('data-user-id');

    var items = Array.prototype.map.call(list.querySelectorAll('li[data-check]'), function (li) {
      var mark = document.createElement('span');
      mark.className = 'rule-mark';
      mark.setAttribute('aria-hidden', 'true');
      var state = document.createElement('span');
      state.className = 'visually-hidden';
      li.insertBefore(mark, li.firstChild);
      li.appendChild(state);
      return {
        li: li,
        mark: mark,
        state: state,
        check: li.getAttribute('data-check'),
        value: Number(li.getAttribute('data-value')),
        text: li.textContent.trim()
      };
    });
    list.classList.add('checklist');

    // One polite live region for this list, announced only once typing pauses.
    var live = document.createElement('p');
    live.className = 'visually-hidden';
    live.setAttribute('aria-live', 'polite');
    live.setAttribute('data-checklist-status', '');
    list.insertAdjacentElement('afterend', live);

    function userId() {
      var raw = userIdField ? userIdField.value : knownUserId;
      raw = (raw || '').trim();
      return USER_ID.test(raw) ? raw.toLowerCase() : null;
    }

    // true: met, false: not yet, null: only the server can tell.
    function judge(item, password) {
      var length = Array.from(password).length;
      switch (item.check) {
        case 'min-length': return length >= item.value;
        case 'max-length': return length > 0 && length <= item.value;
        case 'letter':
        case 'capital':
        case 'digit':
        case 'symbol': return CLASSES[item.check].test(password);
        case 'not-user-id':
          var id = userId();
          return length > 0 && !(id && password.toLowerCase().indexOf(id) !== -1);
        default: return null;
      }
    }

    function update() {
      var password = input.value.normalize('NFKC');
      var met = 0;
      var checkable = 0;
      var missing = [];
      items.forEach(function (item) {
        var verdict = password ? judge(item, password) : (item.check === 'on-submit' ? null : false);
        var name = verdict === null ? 'later' : verdict ? 'met' : 'unmet';
        item.li.setAttribute('data-state', name);
        item.mark.textContent = name === 'met' ? '\u2713' : name === 'later' ? '\u2139' : '\u25CB';
        item.state.textContent = ' (' + says(name) + ')';
        if (verdict !== null) {
          checkable++;
          if (verdict) met++;
          else missing.push(item.text);
        }
      });
      return { met: met, total: checkable, missing: missing };
    }

    var timer = null;
    function announce() {
      var result = update();
      if (!input.value) {
        live.textContent = '';
        return;
      }
      var text = fill(says('progress'), { met: String(result.met), total: String(result.total) });
      text += ' ' + (result.missing.length
        ? fill(says('missing'), { rules: result.missing.join(', ') })
        : says('done'));
      live.textContent = text;
    }
    function changed() {
      update();
      clearTimeout(timer);
      timer = setTimeout(announce, ANNOUNCE_AFTER_MS);
    }
    input.addEventListener('input', changed);
    if (userIdField) userIdField.addEventListener('input', changed);
    update();
  }

  Array.prototype.forEach.call(document.querySelectorAll('ul[data-checklist][id]'), enhanceChecklist);
})();
