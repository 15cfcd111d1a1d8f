// The demo login page: logging in sets an HttpOnly session cookie; the meeting page then
// asks the demo server for a token.
const form = document.getElementById("login");
form.addEventListener("submit", async (e) => {
  e.preventDefault();
  const f = new FormData(form);
  const r = await fetch("api/login", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ name: f.get("name"), password: f.get("password") }) });
  if (!r.ok) { document.getElementById("error").textContent = (await r.json()).message; return; }
  // ?mode=relayed|routed on this page carries over to the meeting (routed by default).
  const mode = new URLSearchParams(location.search).get("mode");
  location.href = `meeting.html?room=${encodeURIComponent(f.get("room"))}${mode ? `&mode=${encodeURIComponent(mode)}` : ""}${location.hash}`;
});
