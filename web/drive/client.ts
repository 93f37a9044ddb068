// The drive page's small browser script (served inline; the page works without it): uploads several
// files with a progress bar each (XMLHttpRequest upload progress, two at a time, the CSRF token in a
// header), asks before deleting, and shows modification times in the reader's time zone.
export const DRIVE_JS = `
(function () {
  'use strict';
  var meta = document.querySelector('meta[name=csrf-token]');
  var token = meta ? meta.getAttribute('content') : '';
  var form = document.getElementById('upload-form');
  var list = document.getElementById('upload-progress');
  if (form && list && window.FormData && window.XMLHttpRequest) {
    form.addEventListener('submit', function (ev) {
      var input = form.querySelector('input[type=file]');
      var files = Array.prototype.slice.call(input.files || []);
      if (!files.length) return;
      ev.preventDefault();
      var button = form.querySelector('button');
      button.disabled = true;
      list.textContent = '';
      var rows = files.map(function (f) {
        var li = document.createElement('li');
        var name = document.createElement('span'); name.className = 'name'; name.textContent = f.name;
        var bar = document.createElement('progress'); bar.max = 100; bar.value = 0;
        var status = document.createElement('span'); status.className = 'status'; status.textContent = 'waiting';
        li.appendChild(name); li.appendChild(bar); li.appendChild(status); list.appendChild(li);
        return { li: li, bar: bar, status: status };
      });
      var next = 0, running = 0, failed = 0;
      function finish(i, error) {
        running--;
        if (error) { failed++; rows[i].li.className = 'failed'; rows[i].status.textContent = error; }
        else { rows[i].bar.value = 100; rows[i].li.className = 'done'; rows[i].status.textContent = 'done'; }
        pump();
      }
      function send(i) {
        running++;
        var xhr = new XMLHttpRequest();
        var body = new FormData();
        body.append('file', files[i], files[i].name);
        xhr.open('POST', form.action);
        xhr.setRequestHeader('Accept', 'application/json');
        xhr.setRequestHeader('x-csrf-token', token);
        xhr.upload.onprogress = function (e) {
          if (!e.lengthComputable) return;
          var pct = Math.floor((e.loaded / e.total) * 100);
          rows[i].bar.value = pct;
          rows[i].status.textContent = pct < 100 ? pct + '%' : 'storing';
        };
        xhr.onload = function () {
          var reply = null;
          try { reply = JSON.parse(xhr.responseText); } catch (e) { reply = null; }
          var one = reply && reply.files && reply.files[0];
          if (xhr.status >= 300) finish(i, (reply && reply.error) || (one && one.error) || 'failed (HTTP ' + xhr.status + ')');
          else finish(i, one && one.error ? one.error : null);
        };
        xhr.onerror = function () { finish(i, 'the connection failed'); };
        rows[i].status.textContent = '0%';
        xhr.send(body);
      }
      function pump() {
        while (running < 2 && next < files.length) send(next++);
        if (running === 0) {
          if (failed === 0) window.location.assign(form.getAttribute('data-done') || window.location.href); // a GET, never a re-POST
          else { button.disabled = false; input.value = ''; }
        }
      }
      pump();
    });
  }
  Array.prototype.forEach.call(document.querySelectorAll('form[data-confirm]'), function (f) {
    f.addEventListener('submit', function (ev) {
      if (!window.confirm(f.getAttribute('data-confirm'))) { ev.preventDefault(); return; }
      var yes = document.createElement('input');
      yes.type = 'hidden'; yes.name = 'confirmed'; yes.value = '1';
      f.appendChild(yes);
    });
  });
  Array.prototype.forEach.call(document.querySelectorAll('time[datetime]'), function (t) {
    var d = new Date(t.getAttribute('datetime'));
    if (!isNaN(d.getTime())) t.textContent = d.toLocaleString([], { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
  });
})();
`;
