// Verifying verdicts: a person marks a verdict right or wrong (a false alarm or a missed defect); the
// verified image joins its class's dataset (good → training, anomalous → evaluation) and waits for the
// next training. Used by the inspect page, the history and the trial results.
import { api, describeError } from "./api.js";
import { mayAct } from "./auth.js";

const listeners = new Set();

/** Called with the feedback answer each time a verdict is verified (the datasets page recounts). */
export function onVerified(listener) { listeners.add(listener); }

function sentence(answer) {
  if (answer.duplicate) return `This image is already in ${answer.class_name}'s dataset: nothing new waits for the next training.`;
  const where = answer.split === "train" ? "training images" : "evaluation images";
  const what = answer.marked === "confirmed" ? "Confirmed" : `Marked as ${answer.marked}`;
  const pending = `${answer.verified_pending} verified image${answer.verified_pending === 1 ? "" : "s"} of ${answer.class_name} wait for the next training.`;
  return `${what}: the image joins ${answer.class_name}'s ${where} as ${answer.label}. ${pending}`;
}

/**
 * Buttons "Right" and "Wrong" for one verdict. `request` is the feedback body without `correct`
 * ({request_id, timestamp} or {trial_id, index}); `image` gives the image as base64 when the
 * server did not keep it (the inspect page has it).
 */
export function feedbackButtons(request, image = null) {
  const box = document.createElement("span");
  box.className = "feedback";
  box.dataset.minGroup = "engineer";  // marking a verdict adds to a dataset: an engineer's (access.py)
  box.hidden = !mayAct("engineer");
  const status = document.createElement("span");
  status.className = "hint feedback-status";
  status.setAttribute("role", "status");
  const send = async (correct, button) => {
    for (const b of box.querySelectorAll("button")) b.disabled = true;
    status.textContent = "Saving…";
    try {
      const body = { ...request, correct };
      let answer;
      try {
        answer = await api("/feedback", { method: "POST", body: JSON.stringify(body) });
      } catch (error) {
        if (error.code !== "image_not_kept" || !image) throw error;
        answer = await api("/feedback", { method: "POST", body: JSON.stringify({ ...body, image_base64: image() }) });
      }
      status.textContent = sentence(answer);
      box.dataset.verified = correct ? "right" : "wrong";
      for (const listener of listeners) listener(answer);
    } catch (error) {
      status.textContent = describeError(error, { already_verified: "Already verified: ", image_not_kept: "" });
      if (error.code !== "already_verified") for (const b of box.querySelectorAll("button")) b.disabled = false;
    }
  };
  for (const [label, correct, title] of [["Right", true, "the verdict is right"], ["Wrong", false, "the verdict is wrong: a false alarm or a missed defect"]]) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "secondary small";
    button.textContent = label;
    button.title = title;
    button.setAttribute("aria-label", `verdict ${label.toLowerCase()}`);
    button.addEventListener("click", () => send(correct, button));
    box.append(button);
  }
  box.append(status);
  return box;
}
