// The Python module `gemma3` (pybind11): the C++ library's names and behaviour, with numpy arrays
// in and out (docs/python.md).
//
// Lifetimes and copies: a Model owns its checkpoint (the weights stay mapped from the file); every
// array a call returns owns its memory (the computed matrix is moved into the array, not copied);
// an edit callback gets a writable view of the live buffer, valid only during the call. The GIL is
// released while the model computes; an edit callback takes it back for the time of the call.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include <condition_variable>
#include <cstring>
#include <exception>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include <gemma3/gemma3.hpp>

namespace py = pybind11;
using namespace gemma3;

namespace {

// ---------------------------------------------------------------------------------------------
// Conversions

// A matrix moved into a numpy array that owns it (no copy of the values).
template <typename T>
py::array_t<T> to_numpy(Mat<T>&& m) {
  auto* owned = new Mat<T>(std::move(m));
  py::capsule free_when_done(owned, [](void* p) { delete static_cast<Mat<T>*>(p); });
  return py::array_t<T>({owned->rows(), owned->cols()},
                        {owned->cols() * Eigen::Index(sizeof(T)), Eigen::Index(sizeof(T))},
                        owned->data(), free_when_done);
}

// Token ids from a list of ints or a 1-D integer numpy array; anything else is a TypeError that
// says what was expected.
std::vector<int32_t> to_ids(const py::handle& obj, const char* what = "ids") {
  std::vector<int32_t> ids;
  if (py::isinstance<py::array>(obj)) {
    const auto a = py::reinterpret_borrow<py::array>(obj);
    const char kind = a.dtype().kind();
    if (kind != 'i' && kind != 'u')
      throw py::type_error(std::string(what) +
                           ": expected integer token ids, got a numpy array of " +
                           std::string(py::str(a.dtype())));
    if (a.ndim() != 1)
      throw py::value_error(std::string(what) + ": expected a 1-D array of token ids, got " +
                            std::to_string(a.ndim()) + " dimensions");
    const auto as64 = py::array_t<int64_t, py::array::forcecast>::ensure(a);
    const auto v = as64.unchecked<1>();
    for (py::ssize_t i = 0; i < v.shape(0); ++i) {
      if (v(i) < 0 || v(i) > INT32_MAX)
        throw py::value_error(std::string(what) + ": token id " + std::to_string(v(i)) +
                              " out of range");
      ids.push_back(int32_t(v(i)));
    }
    return ids;
  }
  if (py::isinstance<py::str>(obj) || !py::isinstance<py::sequence>(obj))
    throw py::type_error(std::string(what) + ": expected a sequence of integer token ids, got " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))));
  for (const auto& item : py::reinterpret_borrow<py::sequence>(obj)) {
    if (!py::isinstance<py::int_>(item) || py::isinstance<py::bool_>(item))
      throw py::type_error(std::string(what) +
                           ": expected integer token ids, got an element of type " +
                           std::string(py::str(py::type::of(item).attr("__name__"))));
    const auto v = item.cast<int64_t>();
    if (v < 0 || v > INT32_MAX)
      throw py::value_error(std::string(what) + ": token id " + std::to_string(v) +
                            " out of range");
    ids.push_back(int32_t(v));
  }
  return ids;
}

// An image from a path (str or os.PathLike: decoded by stb_image) or an H x W x 3 uint8 array.
Image to_image(const py::handle& obj) {
  if (py::isinstance<py::array>(obj)) {
    const auto a = py::reinterpret_borrow<py::array>(obj);
    if (a.dtype().kind() != 'u' || a.itemsize() != 1)
      throw py::type_error("image: expected an H x W x 3 uint8 array, got dtype " +
                           std::string(py::str(a.dtype())));
    if (a.ndim() != 3 || a.shape(2) != 3)
      throw py::value_error("image: expected an H x W x 3 uint8 array, got shape " +
                            std::string(py::str(py::tuple(py::cast(
                                std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim()))))));
    if (a.shape(0) == 0 || a.shape(1) == 0) throw py::value_error("image: empty (0 pixels)");
    const auto c = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>::ensure(a);
    Image img(c.shape(1), c.shape(0));
    std::memcpy(img.pixels.data(), c.data(), img.pixels.size());
    return img;
  }
  if (py::isinstance<py::str>(obj) || py::hasattr(obj, "__fspath__"))
    return load_image(obj.cast<std::filesystem::path>());
  throw py::type_error("image: expected a path or an H x W x 3 uint8 numpy array, got " +
                       std::string(py::str(py::type::of(obj).attr("__name__"))));
}

std::vector<Image> to_images(const py::handle& obj) {
  std::vector<Image> images;
  if (obj.is_none()) return images;
  if (py::isinstance<py::str>(obj) || py::isinstance<py::array>(obj) ||
      py::hasattr(obj, "__fspath__"))
    throw py::type_error("images: expected a list of images (paths or uint8 arrays)");
  for (const auto& item : obj) images.push_back(to_image(item));
  return images;
}

py::dict info_dict(const SiteInfo& info) {
  py::dict d;
  d["pos0"] = info.pos0;
  d["heads"] = info.heads;
  d["key0"] = info.key0;
  d["image"] = info.image;
  return d;
}

// ---------------------------------------------------------------------------------------------
// The observer of a forward call: Capture for the sites to capture, Python callables for the sites
// to edit.

template <typename T>
class PyObserver : public Capture<T> {
 public:
  PyObserver(SiteSet capture, std::map<Site, py::function> edits)
      : Capture<T>(std::move(capture)), edit_fns_(std::move(edits)) {
    for (const auto& [site, fn] : edit_fns_) this->edits_.insert(site);
  }

  // The edit runs with the GIL held; the callable gets a writable view of the live buffer and may
  // change it in place, or return an array of the same shape to replace it.
  void on_edit(const Site& s, MatRef<T> v, const SiteInfo& info) override {
    {
      py::gil_scoped_acquire gil;
      py::array_t<T> view({v.rows(), v.cols()},
                          {v.outerStride() * Eigen::Index(sizeof(T)), Eigen::Index(sizeof(T))},
                          v.data(), py::none());
      const py::object out = edit_fns_.at(s)(view, info_dict(info));
      if (!out.is_none()) {
        const auto a = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(out);
        if (!a || a.ndim() != 2 || a.shape(0) != v.rows() || a.shape(1) != v.cols())
          throw InvalidArgument("edit of " + s.name(), "must return None or an array of shape (" +
                                                           std::to_string(v.rows()) + ", " +
                                                           std::to_string(v.cols()) + ")");
        v = Eigen::Map<const Mat<T>>(a.data(), v.rows(), v.cols());
      }
    }
    if (this->reads().contains(s)) Capture<T>::on_read(s, v, info);  // captured as edited
  }

 private:
  std::map<Site, py::function> edit_fns_;
};

SiteSet to_sites(const py::handle& capture) {
  SiteSet sites;
  if (capture.is_none()) return sites;
  if (py::isinstance<py::str>(capture)) {
    const auto s = capture.cast<std::string>();
    if (s == "all") return SiteSet::all();
    throw py::type_error("capture: expected a list of site names or \"all\", got the string '" + s +
                         "'");
  }
  for (const auto& item : capture) sites.insert(Site::parse_or_throw(item.cast<std::string>()));
  return sites;
}

std::map<Site, py::function> to_edits(const py::handle& edits) {
  std::map<Site, py::function> out;
  if (edits.is_none()) return out;
  for (const auto& [key, fn] : edits.cast<py::dict>()) {
    if (!PyCallable_Check(fn.ptr()))
      throw py::type_error("edits: the value for '" + key.cast<std::string>() +
                           "' is not callable");
    out[Site::parse_or_throw(key.cast<std::string>())] = fn.cast<py::function>();
  }
  return out;
}

LogitRows to_rows(const py::handle& logits) {
  if (py::isinstance<py::str>(logits)) {
    const auto s = logits.cast<std::string>();
    if (s == "all") return LogitRows::all();
    if (s == "last") return LogitRows::last();
    if (s == "none") return LogitRows::none();
    throw py::value_error(
        "logits: expected \"all\", \"last\", \"none\" or a list of positions, got '" + s + "'");
  }
  std::vector<int64_t> rows;
  for (const auto& r : logits) rows.push_back(r.cast<int64_t>());
  return LogitRows::at(rows);
}

// Captured tensors by site name: an array for a site announced once per call (text sites, stitched
// across chunks), a list of arrays for one announced several times (one per image or crop).
template <typename T>
py::dict captured_dict(const Capture<T>& cap) {
  py::dict out;
  for (const auto& [site, list] : cap.all()) {
    if (list.size() == 1) {
      out[py::str(site.name())] = to_numpy(Mat<T>(list.front().value));
    } else {
      py::list arrays;
      for (const auto& c : list) arrays.append(to_numpy(Mat<T>(c.value)));
      out[py::str(site.name())] = arrays;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Model, of float or double.

template <typename T>
struct ModelOf {
  using Scalar = T;
  Checkpoint checkpoint;
  Gemma3<T> model;
  // `mmproj`: llama.cpp's vision projector GGUF beside a .gguf text model (empty: none).
  ModelOf(const std::filesystem::path& path, const std::filesystem::path& mmproj, Backend backend,
          Residency residency)
      : checkpoint(mmproj.empty() ? Checkpoint::open(path, residency)
                                  : Checkpoint::open(path, mmproj, residency)),
        model(checkpoint, backend) {}
};

struct Model {
  std::variant<std::shared_ptr<ModelOf<float>>, std::shared_ptr<ModelOf<double>>> impl;
  std::string dtype;

  const Checkpoint& checkpoint() const {
    return std::visit([](const auto& m) -> const Checkpoint& { return m->checkpoint; }, impl);
  }
  const ModelConfig& config() const { return checkpoint().config(); }
};

Model open_model(const std::filesystem::path& path, const std::string& dtype,
                 const std::string& backend, bool huge_pages,
                 const std::optional<std::filesystem::path>& mmproj) {
  const Backend b = backend_from_string(backend);
  const Residency r = huge_pages ? Residency::HugePages : Residency::Mapped;
  const std::filesystem::path projector = mmproj.value_or(std::filesystem::path());
  py::gil_scoped_release nogil;
  if (dtype == "float32") return {std::make_shared<ModelOf<float>>(path, projector, b, r), dtype};
  if (dtype == "float64")
    return {std::make_shared<ModelOf<double>>(path, projector, Backend::Plain, r), dtype};
  throw InvalidArgument("dtype", "'" + dtype + "' is not one of float32, float64");
}

// The soft tokens of images (each, then its pan & scan crops), observed by `obs`.
template <typename T>
ImageEmbeddings<T> encode_images(const Gemma3<T>& model, const std::vector<Image>& images,
                                 Observer<T>* obs) {
  return images.empty() ? ImageEmbeddings<T>{} : model.encode(images, obs);
}

template <typename T>
py::object forward_of(const ModelOf<T>& m, const std::vector<int32_t>& ids,
                      const std::vector<Image>& images, const SiteSet& sites,
                      std::map<Site, py::function> edit_fns, const LogitRows& rows) {
  PyObserver<T> obs(sites, std::move(edit_fns));
  Observer<T>* o = sites.empty() && obs.edits().empty() ? nullptr : &obs;
  Mat<T> logits;
  {
    py::gil_scoped_release nogil;
    const ImageEmbeddings<T> soft = encode_images(m.model, images, o);
    logits = o ? m.model.forward(ids, soft, obs, rows) : m.model.forward(ids, soft, rows);
  }
  py::dict out;
  out["logits"] = to_numpy(std::move(logits));
  out["captured"] = captured_dict(obs);
  return out;
}

py::object forward(const Model& m, const py::handle& ids_obj, const py::handle& images_obj,
                   const py::handle& capture, const py::handle& edits, const py::handle& logits) {
  const std::vector<int32_t> ids = to_ids(ids_obj);
  const std::vector<Image> images = to_images(images_obj);
  const SiteSet sites = to_sites(capture);
  auto edit_fns = to_edits(edits);
  const LogitRows rows = to_rows(logits);
  return std::visit(
      [&](const auto& impl) { return forward_of(*impl, ids, images, sites, edit_fns, rows); },
      m.impl);
}

template <typename T>
py::list encode_image_of(const ModelOf<T>& m, const Image& image) {
  ImageEmbeddings<T> soft;
  {
    py::gil_scoped_release nogil;
    soft = m.model.encode(std::vector<Image>{image});
  }
  py::list out;
  for (auto& tokens : soft) out.append(to_numpy(std::move(tokens)));
  return out;
}

py::list encode_image(const Model& m, const py::handle& image_obj) {
  const Image image = to_image(image_obj);
  return std::visit([&](const auto& impl) { return encode_image_of(*impl, image); }, m.impl);
}

py::dict token_score_dict(const TokenScore& t) {
  py::dict d;
  d["id"] = t.id;
  d["position"] = t.position;
  d["logprob"] = t.logprob;
  d["rank"] = t.rank;
  d["top"] = t.top;
  return d;
}

py::list score_ids_py(const Model& m, const py::handle& ids_obj, int64_t first, int64_t top) {
  const std::vector<int32_t> ids = to_ids(ids_obj);
  std::vector<TokenScore> scores;
  std::visit(
      [&](const auto& impl) {
        py::gil_scoped_release nogil;
        scores = score_ids(impl->model.text(), ids, first, top);
      },
      m.impl);
  py::list out;
  for (const auto& t : scores) out.append(token_score_dict(t));
  return out;
}

py::dict score_text_py(const Model& m, const Tokenizer& tok, const std::string& prompt,
                       const std::string& continuation, bool add_bos, int64_t top) {
  ContinuationScore r;
  std::visit(
      [&](const auto& impl) {
        py::gil_scoped_release nogil;
        r = score(impl->model.text(), tok, prompt, continuation, add_bos, top);
      },
      m.impl);
  py::dict d;
  d["ids"] = r.ids;
  d["first"] = r.first;
  d["boundary_merged"] = r.boundary_merged;
  d["logprob"] = r.logprob;
  py::list tokens;
  for (const auto& t : r.tokens) tokens.append(token_score_dict(t));
  d["tokens"] = tokens;
  return d;
}

// ---------------------------------------------------------------------------------------------
// Sessions and streaming generation.

// A chat message from a dict {"role": ..., "content": str | [{"type": "text", "text": ...} |
// {"type": "image"}]}, as Hugging Face's chat templates take it.
Message to_message(const py::handle& obj) {
  if (!py::isinstance<py::dict>(obj))
    throw py::type_error("messages: expected dicts with 'role' and 'content'");
  const auto d = py::reinterpret_borrow<py::dict>(obj);
  if (!d.contains("role") || !d.contains("content"))
    throw py::value_error("messages: every message needs 'role' and 'content'");
  Message msg;
  msg.role = d["role"].cast<std::string>();
  msg.content_is_string = false;
  const py::object content = d["content"];
  if (py::isinstance<py::str>(content)) {
    msg.content_is_string = true;
    msg.content = {ContentPart::Text(content.cast<std::string>())};
    return msg;
  }
  for (const auto& part : content) {
    const auto p = part.cast<py::dict>();
    const auto type = p["type"].cast<std::string>();
    if (type == "text")
      msg.content.push_back(ContentPart::Text(p["text"].cast<std::string>()));
    else if (type == "image")
      msg.content.push_back(ContentPart::Image());
    else
      throw py::value_error("messages: unknown content type '" + type + "' (text or image)");
  }
  return msg;
}

// One generation, run by a worker thread and handed over a token at a time: the worker computes a
// token, then waits until Python asks for it (the next one is computed while Python looks at this
// one). Dropping the iterator stops the generation (on_token returns false).
class Generation {
 public:
  using Run = std::function<GenerateResult(TokenCallback)>;
  explicit Generation(Run run) {
    worker_ = std::thread([this, run = std::move(run)] {
      try {
        GenerateResult r = run([this](const SampleResult& t) {
          std::unique_lock lock(m_);
          cv_.wait(lock, [&] { return wanted_ || cancelled_; });
          if (cancelled_) return false;
          slot_ = t;
          wanted_ = false;
          cv_.notify_all();
          return true;
        });
        std::lock_guard lock(m_);
        result_ = std::move(r);
      } catch (...) {
        std::lock_guard lock(m_);
        error_ = std::current_exception();
      }
      std::lock_guard lock(m_);
      done_ = true;
      cv_.notify_all();
    });
  }
  ~Generation() { stop(); }

  bool done() {
    std::lock_guard lock(m_);
    return done_;
  }

  py::dict next() {
    std::optional<SampleResult> token;
    {
      py::gil_scoped_release nogil;
      std::unique_lock lock(m_);
      if (!done_ && !slot_) wanted_ = true;
      cv_.notify_all();
      cv_.wait(lock, [&] { return slot_.has_value() || done_; });
      token.swap(slot_);
    }
    if (token) {
      py::dict d;
      d["id"] = token->id;
      d["logprob"] = token->logprob;
      d["top"] = token->top;
      return d;
    }
    join();
    if (error_) std::rethrow_exception(error_);
    throw py::stop_iteration();
  }

  // The whole result once the iterator is exhausted (None before).
  py::object result() {
    std::lock_guard lock(m_);
    if (!done_ || !result_) return py::none();
    const GenerateResult& r = *result_;
    py::dict d;
    d["ids"] = r.ids;
    d["text"] = r.text;
    d["reason"] = to_string(r.reason);
    d["prefill_tokens"] = r.prefill_tokens;
    d["prefill_seconds"] = r.prefill_seconds;
    d["decode_seconds"] = r.decode_seconds;
    d["time_to_first_token"] = r.time_to_first_token;
    return d;
  }

  void stop() {
    {
      std::lock_guard lock(m_);
      cancelled_ = true;
      cv_.notify_all();
    }
    join();
  }

 private:
  void join() {
    if (!worker_.joinable()) return;
    if (PyGILState_Check()) {
      py::gil_scoped_release nogil;
      worker_.join();
    } else {
      worker_.join();
    }
  }

  std::thread worker_;
  std::mutex m_;
  std::condition_variable cv_;
  std::optional<SampleResult> slot_;
  bool wanted_ = false, cancelled_ = false, done_ = false;
  std::optional<GenerateResult> result_;
  std::exception_ptr error_;
};

// A Session over a shared model, one per Python thread; it keeps its model alive.
template <typename T>
struct SessionOf {
  std::shared_ptr<ModelOf<T>> model;
  std::shared_ptr<const Tokenizer> tok;
  Session<T> session;
  SessionOf(std::shared_ptr<ModelOf<T>> m, std::shared_ptr<const Tokenizer> t, int64_t context,
            const SamplerConfig& sampling)
      : model(std::move(m)), tok(std::move(t)), session(model->model, *tok, context, sampling) {}

  // Each image through the model's processor (pan & scan crops included) and the session's image
  // cache; the prompt's parts for them.
  ImageEmbeddings<T> encode(const std::vector<Image>& images, std::vector<ContentPart>* parts) {
    ImageEmbeddings<T> out;
    for (const Image& img : images) {
      const ProcessedImage p = model->model.processor()(img);
      for (auto& tokens : session.encode(p)) out.push_back(std::move(tokens));
      if (parts) parts->push_back(ContentPart::Image(p.num_crops));
    }
    return out;
  }
};

class PySession {
 public:
  PySession(const Model& model, std::shared_ptr<const Tokenizer> tok, int64_t context,
            const SamplerConfig& sampling) {
    std::visit(
        [&](const auto& impl) {
          using S = SessionOf<typename std::decay_t<decltype(*impl)>::Scalar>;
          impl_ = std::make_shared<S>(impl, tok, context, sampling);
        },
        model.impl);
  }

  std::shared_ptr<Generation> generate(const py::handle& ids_obj, int64_t max_new_tokens,
                                       const py::handle& images_obj,
                                       std::vector<std::string> stop) {
    const std::vector<int32_t> ids = to_ids(ids_obj);
    const std::vector<Image> images = to_images(images_obj);
    return start([this, ids, images, max_new_tokens, stop](TokenCallback on_token) {
      return std::visit(
          [&](auto& s) {
            GenerateOptions opt{.max_new_tokens = max_new_tokens, .stop_strings = stop};
            opt.on_token = std::move(on_token);
            const auto soft = s->encode(images, nullptr);
            return s->session.generate(ids, opt, {}, soft);
          },
          impl_);
    });
  }

  std::shared_ptr<Generation> chat(const std::string& text, int64_t max_new_tokens,
                                   const py::handle& images_obj, std::vector<std::string> stop) {
    const std::vector<Image> images = to_images(images_obj);
    return start([this, text, images, max_new_tokens, stop](TokenCallback on_token) {
      return std::visit(
          [&](auto& s) {
            GenerateOptions opt{.max_new_tokens = max_new_tokens, .stop_strings = stop};
            opt.on_token = std::move(on_token);
            std::vector<ContentPart> parts;
            const auto soft = s->encode(images, &parts);
            parts.push_back(ContentPart::Text(text));
            const bool plain = parts.size() == 1;
            return s->session.chat(Message{"user", std::move(parts), plain}, opt, {}, soft,
                                   s->model->checkpoint.config().mm_tokens_per_image);
          },
          impl_);
    });
  }

  void reset() {
    check_idle();
    std::visit([](auto& s) { s->session.reset(); }, impl_);
  }
  std::vector<int32_t> tokens() const {
    return std::visit([](const auto& s) { return s->session.tokens(); }, impl_);
  }
  int64_t context() const {
    return std::visit([](const auto& s) { return s->session.context(); }, impl_);
  }
  std::pair<int64_t, int64_t> image_cache_stats() const {
    return std::visit(
        [](const auto& s) {
          return std::pair{s->session.image_cache().hits(), s->session.image_cache().misses()};
        },
        impl_);
  }

 private:
  void check_idle() const {
    if (const auto g = current_.lock(); g && !g->done())
      throw InvalidArgument("session",
                            "a generation is still running: exhaust it or call its close() first");
  }
  std::shared_ptr<Generation> start(Generation::Run run) {
    check_idle();
    auto g = std::make_shared<Generation>(std::move(run));
    current_ = g;
    return g;
  }

  std::variant<std::shared_ptr<SessionOf<float>>, std::shared_ptr<SessionOf<double>>> impl_;
  std::weak_ptr<Generation> current_;
};

// ---------------------------------------------------------------------------------------------
// Exceptions: the library's error classes as Python classes, each also a subclass of the builtin
// exception a Python user would catch (ValueError for bad arguments, OSError for files).

// The Python classes of the library's errors (module globals: a translator cannot capture).
PyObject *py_error, *py_invalid_argument, *py_io_error, *py_format_error, *py_config_error,
    *py_tensor_error;

PyObject* new_exception(py::module_& m, const char* name, py::tuple bases, const char* doc) {
  PyObject* e =
      PyErr_NewExceptionWithDoc((std::string("gemma3.") + name).c_str(), doc, bases.ptr(), nullptr);
  m.add_object(name, py::handle(e));
  return e;
}

}  // namespace

PYBIND11_MODULE(_gemma3, m) {
  m.doc() =
      "Gemma 3 on the CPU: the gemma3 C++ library's model, tokenizer, sessions and "
      "observers, with numpy arrays in and out (docs/python.md).";

  py::object runtime_error = py::reinterpret_borrow<py::object>(PyExc_RuntimeError);
  PyObject* error = py_error = new_exception(m, "Error", py::make_tuple(runtime_error),
                                             "Base class of the library's errors.");
  py::object base = py::reinterpret_borrow<py::object>(error);
  py_invalid_argument =
      new_exception(m, "InvalidArgument",
                    py::make_tuple(base, py::reinterpret_borrow<py::object>(PyExc_ValueError)),
                    "A bad argument: the message names it and says what was expected.");
  py_io_error = new_exception(
      m, "IoError", py::make_tuple(base, py::reinterpret_borrow<py::object>(PyExc_OSError)),
      "A file that cannot be read or written.");
  py_format_error = new_exception(m, "FormatError", py::make_tuple(base),
                                  "A file that is not what it claims to be.");
  py_config_error = new_exception(m, "ConfigError", py::make_tuple(base),
                                  "A config field that is missing or out of range.");
  py_tensor_error = new_exception(m, "TensorError", py::make_tuple(base),
                                  "A tensor that is missing or of the wrong shape or dtype.");
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const InvalidArgument& e) {
      PyErr_SetString(py_invalid_argument, e.what());
    } catch (const IoError& e) {
      PyErr_SetString(py_io_error, e.what());
    } catch (const FormatError& e) {
      PyErr_SetString(py_format_error, e.what());
    } catch (const ConfigError& e) {
      PyErr_SetString(py_config_error, e.what());
    } catch (const TensorError& e) {
      PyErr_SetString(py_tensor_error, e.what());
    } catch (const gemma3::Error& e) {
      PyErr_SetString(py_error, e.what());
    }
  });

  py::class_<Tokenizer, std::shared_ptr<Tokenizer>>(m, "Tokenizer")
      .def(py::init([](const std::filesystem::path& path) {
             return std::make_shared<Tokenizer>(load_tokenizer(path));
           }),
           py::arg("path"),
           "Loads a SentencePiece tokenizer.model, or the tokenizer embedded in a .gguf model.")
      .def(
          "encode",
          [](const Tokenizer& t, const std::string& text, bool add_bos, bool parse_special) {
            return t.encode(text, {.add_bos = add_bos, .parse_special = parse_special});
          },
          py::arg("text"), py::kw_only(), py::arg("add_bos") = false,
          py::arg("parse_special") = false)
      .def(
          "decode",
          [](const Tokenizer& t, const py::handle& ids, bool skip_special) {
            return t.decode(to_ids(ids), skip_special);
          },
          py::arg("ids"), py::kw_only(), py::arg("skip_special") = false)
      .def("piece", &Tokenizer::piece, py::arg("id"))
      .def("id_of", &Tokenizer::id_of, py::arg("piece"))
      .def(
          "render_chat",
          [](const Tokenizer& t, const py::list& messages, bool add_generation_prompt,
             int64_t mm_tokens_per_image) {
            Conversation c;
            for (const auto& msg : messages) c.add(to_message(msg));
            return c.render_ids(t, mm_tokens_per_image, add_generation_prompt);
          },
          py::arg("messages"), py::kw_only(), py::arg("add_generation_prompt") = true,
          py::arg("mm_tokens_per_image") = 256,
          "Token ids of a conversation under Gemma 3's chat template, <bos> first.")
      .def_property_readonly("vocab_size", &Tokenizer::vocab_size)
      .def_property_readonly("bos", &Tokenizer::bos)
      .def_property_readonly("eos", &Tokenizer::eos)
      .def_property_readonly("end_of_turn", &Tokenizer::end_of_turn)
      .def_property_readonly("path", &Tokenizer::path);

  py::class_<Model>(m, "Model")
      .def(py::init(&open_model), py::arg("path"), py::kw_only(), py::arg("dtype") = "float32",
           py::arg("backend") = "fast", py::arg("huge_pages") = false,
           py::arg("mmproj") = py::none(),
           "Opens a checkpoint directory (config.json + safetensors) or a GGUF file; mmproj: the "
           "vision projector GGUF of a GGUF model (llama.cpp's mmproj file).")
      .def_readonly("dtype", &Model::dtype)
      .def_property_readonly(
          "backend",
          [](const Model& mm) {
            return std::visit(
                [](const auto& i) { return std::string(to_string(i->model.text().backend())); },
                mm.impl);
          })
      .def_property_readonly("path", [](const Model& mm) { return mm.checkpoint().dir().string(); })
      .def_property_readonly("vocab_size",
                             [](const Model& mm) { return mm.config().text.vocab_size; })
      .def_property_readonly("hidden_size",
                             [](const Model& mm) { return mm.config().text.hidden_size; })
      .def_property_readonly("num_layers",
                             [](const Model& mm) { return mm.config().text.num_hidden_layers; })
      .def_property_readonly("has_vision",
                             [](const Model& mm) { return mm.config().is_multimodal(); })
      .def_property_readonly("image_token_id",
                             [](const Model& mm) {
                               return mm.config().is_multimodal() ? mm.config().image_token_index
                                                                  : int64_t(-1);
                             })
      .def_property_readonly("mm_tokens_per_image",
                             [](const Model& mm) { return mm.config().mm_tokens_per_image; })
      .def("forward", &forward, py::arg("ids"), py::kw_only(), py::arg("images") = py::none(),
           py::arg("capture") = py::none(), py::arg("edits") = py::none(),
           py::arg("logits") = "all",
           "Runs ids (with images for their placeholder runs) from position 0. Returns "
           "{'logits': array [rows, vocab], 'captured': {site: array | [arrays]}}.")
      .def("encode_image", &encode_image, py::arg("image"),
           "Soft tokens [mm_tokens_per_image, hidden] of an image and of its pan & scan crops.")
      .def("score", &score_ids_py, py::arg("ids"), py::kw_only(), py::arg("first") = 1,
           py::arg("top") = 0, "log p(ids[t] | ids[:t]) for t from `first` on.")
      .def("score_text", &score_text_py, py::arg("tokenizer"), py::arg("prompt"),
           py::arg("continuation"), py::kw_only(), py::arg("add_bos") = true, py::arg("top") = 0,
           "log p(continuation | prompt), the text tokenized whole.");

  py::class_<Generation, std::shared_ptr<Generation>>(m, "Generation")
      .def("__iter__", [](py::object self) { return self; })
      .def("__next__", &Generation::next)
      .def_property_readonly("result", &Generation::result)
      .def("close", &Generation::stop, "Stops the generation (it ends with reason 'callback').");

  py::class_<PySession>(m, "Session")
      .def(py::init([](const Model& model, std::shared_ptr<Tokenizer> tok, int64_t context,
                       float temperature, int32_t top_k, float top_p, float min_p,
                       float repetition_penalty, uint64_t seed, int32_t top_logprobs) {
             SamplerConfig s;
             s.temperature = temperature;
             s.top_k = top_k;
             s.top_p = top_p;
             s.min_p = min_p;
             s.repetition_penalty = repetition_penalty;
             s.seed = seed;
             s.top_logprobs = top_logprobs;
             return std::make_unique<PySession>(model, std::move(tok), context, s);
           }),
           py::arg("model"), py::arg("tokenizer"), py::kw_only(), py::arg("context") = 4096,
           py::arg("temperature") = 1.0f, py::arg("top_k") = 64, py::arg("top_p") = 0.95f,
           py::arg("min_p") = 0.0f, py::arg("repetition_penalty") = 1.0f,
           py::arg("seed") = uint64_t(0), py::arg("top_logprobs") = 0)
      .def("generate", &PySession::generate, py::arg("ids"), py::kw_only(),
           py::arg("max_new_tokens") = 512, py::arg("images") = py::none(),
           py::arg("stop") = std::vector<std::string>{}, py::keep_alive<0, 1>(),
           "Prefills ids after what the session holds, then yields each sampled token as a dict "
           "{'id', 'logprob', 'top'}; the iterator's `result` holds the text and the stop reason.")
      .def("chat", &PySession::chat, py::arg("text"), py::kw_only(),
           py::arg("max_new_tokens") = 512, py::arg("images") = py::none(),
           py::arg("stop") = std::vector<std::string>{}, py::keep_alive<0, 1>(),
           "One user turn (images first, then the text), the answer streamed as by generate.")
      .def("reset", &PySession::reset)
      .def_property_readonly("tokens", &PySession::tokens)
      .def_property_readonly("context", &PySession::context)
      .def_property_readonly("image_cache_stats", &PySession::image_cache_stats,
                             "(hits, misses) of the session's image cache.");

  m.def(
      "active_isa", [] { return std::string(kernels::active_isa()); },
      "The instruction set the kernels run with on this machine.");
  m.def(
      "keep_freed_memory", [] { return gemma3::keep_freed_memory(); },
      "Keep freed blocks up to 512 MiB in the heap for reuse, as the gemma3 CLI does (glibc's "
      "mallopt; the whole process's allocations, numpy's included). Without it glibc maps every "
      "block above 128 KiB afresh, and each forward pass faults its activations in again. True "
      "where applied, False where the C library is not glibc.");
}
